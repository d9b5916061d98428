"""The package's import order (docs/architecture.md): each module imports only modules below it,
the library never imports the study, and no private name crosses a module."""
import ast
from pathlib import Path

import pytest

import hamqcore

PKG = Path(hamqcore.__file__).parent
# rank of each library module: a module may import only modules of a lower rank
LIBRARY = {"_core": 0, "_checks": 1, "kernels": 2, "ops": 3, "crossbar": 4, "chip": 4, "quant": 4, "layers": 5,
           "readout": 5, "energy": 6, "pricing": 6, "nn": 7, "rounding": 7, "__init__": 8}   # __init__: the facade
STUDY = {"settings": 0, "io": 0, "distributed": 0, "models": 1, "data": 1, "plots": 1, "train": 2, "protocol": 2,
         "experiments": 3, "cli": 4,
         "__init__": 0}


def _imports(path: Path, package: str):
    """(absolute module, imported names) of every import in ``path``, lazy ones included."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                yield mod, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        package = ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])
        yield path, ".".join(parts), package


def _rank(table, module: str):
    parts = module.split(".")
    key = parts[-1] if parts[-1] in table else parts[-2] if len(parts) > 1 and parts[-2] in table else None
    return table.get(key)


@pytest.mark.parametrize("path, module, package", list(_modules()), ids=lambda v: str(v))
def test_imports_follow_the_layers(path, module, package):
    in_study = module.startswith("hamqcore.study")
    table = STUDY if in_study else LIBRARY
    own = _rank(table, module)
    assert own is not None, f"{module} has no place in the import order (tests/test_layering.py, docs/architecture.md)"
    for target, name in _imports(path, package):
        if not target.startswith("hamqcore"):
            continue
        full = f"{target}.{name}" if name and f"{target}.{name}".replace(".", "/") and (
            PKG.parent / f"{target}.{name}".replace(".", "/")).with_suffix(".py").exists() else target
        if full.endswith("._core") or target.endswith("._core"):
            continue
        if not in_study:
            assert not full.startswith("hamqcore.study"), f"library module {module} imports the study ({full})"
        if full.startswith("hamqcore.study") != in_study:
            continue  # the study may import any library module
        rank = _rank(table, full)
        if rank is None or full == module:
            continue
        assert rank < own or (in_study and full.startswith("hamqcore.study.data") and module.startswith(
            "hamqcore.study.data")), f"{module} (rank {own}) imports {full} (rank {rank}): not below it"


@pytest.mark.parametrize("path, module, package", list(_modules()), ids=lambda v: str(v))
def test_no_private_name_crosses_a_module(path, module, package):
    for target, name in _imports(path, package):
        if target.startswith("hamqcore") and name and name.startswith("_") and name != "_core":
            pytest.fail(f"{module} imports the private name {name} from {target}")
