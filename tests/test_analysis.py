"""The analysis scripts' quick modes, asserted on the JSON they write (every statement carries a
status and passed; the scripts exit non-zero when one fails)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, out, *extra):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _statements(path):
    d = json.loads(path.read_text())
    assert d["all_passed"] and all(s["passed"] for s in d["statements"])
    for s in d["statements"]:
        assert s["status"] in ("proven", "exhaustively checked", "numerically checked", "counterexample", "measured")
    return d, {s["id"]: s for s in d["statements"]}


def test_derive_density(tmp_path):
    _run("derive_density.py", tmp_path)
    d, st = _statements(tmp_path / "derivation.json")
    assert st["even_sinks_odd_sources"]["status"] == "exhaustively checked"
    assert st["drift_solution_translation"]["status"] == "proven"
    # every failure mode reproduced as a counterexample, with its number
    for sid in ("finite_step_counterexample", "kink_euler", "overshoot_heavy_ball", "overshoot_adam", "lsq_pull",
                "task_loss"):
        assert st[sid]["status"] == "counterexample", sid
    assert 64.5 < st["overshoot_adam"]["values"]["peak"] < 65.5
    assert 2.5 < st["lsq_pull"]["values"]["x_lone"] < 3.5
    assert "fixed step" in d["theorem"] and "any integer table" in d["proof"]
    assert "drift alone" in (tmp_path / "density_derivation.md").read_text()


def test_verify_density(tmp_path):
    _run("verify_density.py", tmp_path)
    d, st = _statements(tmp_path / "verification.json")
    assert abs(d["closed_form_final_mean_hw"] - d["mc_final_mean_hw"]) < 0.05
    assert st["drift_mc_8bit"]["status"] == "numerically checked"
    cf = st["drift_mc_8bit"]["values"]["closed_form"]
    assert all(b <= a + 1e-12 for a, b in zip(cf, cf[1:])) and cf[-1] < cf[0]
    for fig in ("drift_alone", "escape_times"):
        assert (tmp_path / f"{fig}.png").stat().st_size > 5000


def test_derive_rounding(tmp_path):
    _run("derive_rounding.py", tmp_path)
    d, st = _statements(tmp_path / "rounding.json")
    assert st["kernel_vs_threshold"]["values"]["mismatches"] == 0
