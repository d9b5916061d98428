"""The README's quickstart and CI stay in step."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\n\n```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(block) == 2, "the quickstart holds exactly two commands"
    test_cmd = next(line for line in block if "pytest" in line)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_cmd in ci


NO_TORCH = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, Block())
import numpy as np
import hamqcore
from hamqcore import crossbar, kernels
q = np.arange(-127, 128, dtype=np.int16)
assert hamqcore.total_hamming_weight(q, 8) > 0
r = crossbar.simulate_layer(np.ones((4, 10), np.int16), np.ones((3, 10), np.int16), crossbar.CrossbarConfig())
assert r.total_energy > 0
assert "torch" not in sys.modules
try:
    import hamqcore.nn
except ModuleNotFoundError as e:
    assert "torch" in str(e)
else:
    raise AssertionError("hamqcore.nn imported without torch")
print("ok")
"""


def test_numpy_api_works_without_torch():
    """hamqcore, hamqcore.kernels and hamqcore.crossbar need numpy only (iminuit's test_without_* pattern)."""
    import subprocess
    import sys

    import hamqcore   # run in the folder holding the hamqcore under test, not in a checkout's sources

    proc = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True,
                          cwd=Path(hamqcore.__file__).resolve().parents[1])
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout + proc.stderr


def test_every_cpp_mutant_applies_to_the_tree():
    """.ci/cpp_mutants.py slips one text in the sources per mutant: each original must occur exactly once
    (a kernel rewritten under a mutant leaves it reported "broken" and never run), its files exist, and
    its tests name files of the suite; a mutant of one tier's code names a tier the dispatcher knows."""
    import runpy

    mutants = runpy.run_path(str(ROOT / ".ci" / "cpp_mutants.py"), run_name="mutants")["MUTANTS"]
    assert mutants
    for i, (path, old, new, tests, *tier) in enumerate(mutants):
        assert len(tier) <= 1 and all(t in ("avx2", "avx512") for t in tier), (i, tier)
        text = (ROOT / path).read_text()
        assert text.count(old) == 1, (i, path, old)
        assert new != old, i
        for t in tests:
            assert (ROOT / t.split("::")[0]).is_file(), (i, t)
