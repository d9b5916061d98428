"""Data set containers, the cache location and the checks every loader shares."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np


class DataError(ValueError):
    """A data set is missing or malformed; the message says what was expected where."""


@dataclass
class Split:
    x: np.ndarray                       # float32 inputs (N, C, H, W)
    y: np.ndarray                       # int64 labels (N,)
    groups: Optional[np.ndarray] = None  # speaker / source id per example, when known

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataSet:
    name: str
    classes: Tuple[str, ...]
    train: Split
    test: Split
    val: Optional[Split] = None
    augment: Optional[str] = None        # "cifar": random crop + flip during training
    info: Dict[str, object] = field(default_factory=dict)

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def cache_dir() -> Path:
    """Where generated data sets are cached: $HAMQCORE_CACHE, else ~/.cache/hamqcore."""
    return Path(os.environ.get("HAMQCORE_CACHE", Path.home() / ".cache" / "hamqcore"))


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    # in a seeded random order: a set stored class by class (mnist5k) must not stay so, or "the first
    # N examples" (a calibration batch, a training subset) would be a few classes
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def standardise(train: np.ndarray, *others: np.ndarray):
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)], (mean, std)


def require_folder(root: Path, names: Sequence[str], what: str, expected: str) -> None:
    """DataError naming every missing entry of a data set folder and what was expected there."""
    if not root.is_dir():
        raise DataError(f"{what}: {root} is not a folder. Expected {expected}; hamqcore never downloads it.")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DataError(f"{what}: missing {', '.join(missing)} in {root}. Expected {expected}; "
                        "hamqcore never downloads it.")


def check_arrays(what: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """DataError when inputs hold NaN/inf, labels fall outside 0..num_classes-1, or the counts differ."""
    if len(x) != len(y):
        raise DataError(f"{what}: {len(x)} inputs but {len(y)} labels")
    if x.size and not np.isfinite(x).all():
        raise DataError(f"{what}: {int((~np.isfinite(x)).sum())} input values are NaN or inf")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise DataError(f"{what}: labels must be in 0..{num_classes - 1}, found {int(bad[0])}")
