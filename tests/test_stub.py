import ast
from pathlib import Path

import hamqcore._core as core


def test_stub_lists_every_compiled_function():
    stub = ast.parse((Path(core.__file__).parent / "_core.pyi").read_text())
    names = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}
    public = {n for n in dir(core) if not n.startswith("_")}
    assert public == names, public ^ names


def test_stub_lists_every_result_property():
    stub = ast.parse((Path(core.__file__).parent / "_core.pyi").read_text())
    (cls,) = [n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "CrossbarResult"]
    typed = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
    assert typed == {n for n in dir(core.CrossbarResult) if not n.startswith("_")}
