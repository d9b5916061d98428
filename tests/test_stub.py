import ast
from pathlib import Path

import hamqcore._core as core


def test_stub_lists_every_compiled_function():
    stub = ast.parse((Path(core.__file__).parent / "_core.pyi").read_text())
    names = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    public = {n for n in dir(core) if not n.startswith("_")}
    assert public == names, public ^ names
