"""Output files of the study: folders checked before any work, files replaced atomically (a kill at
any moment leaves the old file or the new one, never a truncated one) and no temporary file left over
from a killed writer once the next write of that file has run."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def ensure_writable_dir(path) -> Path:
    """Create ``path`` if needed and check that files can be written there, before any work is
    done: a ValueError names the path when it is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output folder {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".hamq-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"output folder {path} is not writable: {e.strerror or e}") from None
    return path


def _tmp_name(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_tmp(path) -> None:
    """Delete the temporary files of ``path`` that writers which no longer run left behind."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def write_atomic(path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    remove_stale_tmp(path)
    tmp = _tmp_name(path, os.getpid())
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_atomic(obj, path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    import torch

    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))
