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
    assert st["even_sinks_odd_sources"]["status"] == "proven"    # the parity proof, checked to 16 bits
    for sid in ("t_star", "final_state_min_hw", "energy_rate", "theorem_any_table"):
        assert st[sid]["status"] == "numerically checked", sid
    assert st["hw_specific_not_generic"]["status"] == "counterexample"
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


# ------------------------------------------------------------------------------------------------
# Every check can fail: each is fed a deliberately wrong closed form and must report failure
# ------------------------------------------------------------------------------------------------

import ast  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(ROOT / "analysis"))
import derive_density as dd  # noqa: E402
import verify_density as vd  # noqa: E402


def test_no_statement_passes_by_construction():
    """No rec.add(...) in the analysis scripts is given a literal True (or a constant) as its result."""
    for script in ("derive_density.py", "verify_density.py", "derive_rounding.py"):
        tree = ast.parse((ROOT / "analysis" / script).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add" and len(node.args) >= 4:
                assert not isinstance(node.args[3], ast.Constant), f"{script}:{node.lineno} passes a constant"


def test_t_star_check_fails_for_a_wrong_t_star():
    assert dd.check_t_star(widths=range(2, 6))[0]
    assert not dd.check_t_star(lambda eta_lam: 1.0 / eta_lam, widths=range(2, 6))[0]        # too late: not the last change
    assert not dd.check_t_star(lambda eta_lam: 1.0 / (4 * eta_lam), widths=range(2, 6))[0]  # too early


def test_final_state_check_is_per_weight_with_tolerance_zero():
    assert dd.check_final_state(widths=range(2, 6))[0]
    assert not dd.check_final_state(lambda lo, hi, rnd: np.maximum(lo, hi), widths=range(2, 6))[0]
    assert not dd.check_final_state(lambda lo, hi, rnd: rnd, widths=range(2, 6))[0]


def test_the_hw_final_state_is_refuted_for_generic_tables():
    assert dd.check_generic_theorem(40)[0]                 # the theorem holds for any table
    ok, v = dd.check_generic_final(dd.hw_final, 200)      # the HW-specific final state does not
    assert not ok and v["tables_contradicting"] > 50
    end = dd.exact_flow(dd.COUNTEREXAMPLE_TABLE, np.array([dd.COUNTEREXAMPLE_X0]), 1.0, 1e6)[0]
    assert end == 0.0 and dd.COUNTEREXAMPLE_TABLE[0] == 3


def _rate(side=1.0, speed_power=1):
    def rate(t, hw, rho0, eta_lam):
        hi = (len(hw) - 1) // 2
        d = np.diff(hw).astype(float)
        k = np.arange(-hi, hi)
        speed = eta_lam * np.abs(d) ** speed_power
        active = (d != 0) & (speed * t < 0.5)
        return float(-np.sum(np.where(active, speed * np.abs(d) * rho0.pdf(k + 0.5 + side * np.sign(d) * speed * t),
                                      0.0)))
    return rate


def test_energy_rate_check_fails_for_wrong_closed_forms():
    assert dd.check_energy_rate(_rate(), atoms=300_000)[0]                     # the closed form, rewritten
    assert dd.check_energy_rate(atoms=300_000)[0]
    assert not dd.check_energy_rate(_rate(side=-1.0), atoms=300_000)[0]        # rho_0 on the wrong side of the midpoint
    assert not dd.check_energy_rate(_rate(speed_power=2), atoms=300_000)[0]    # crossing speed eta lam Delta^2


def test_gibbs_check_rejects_a_globally_tilted_density():
    runs = vd.gibbs_runs(n=30_000, t_end=60.0)
    assert vd.check_gibbs_mixing(runs)[0]
    tilted = lambda x, bits, lam, temp: vd.gibbs_density(x, bits, lam, temp) * np.exp(0.1 * x)  # noqa: E731
    assert not vd.check_gibbs_mixing(runs, tilted)[0]
    assert not vd.check_gibbs_mixing(runs, lambda x, bits, lam, temp: vd.gibbs_density(x, bits, 2 * lam, temp))[0]


def test_first_passage_check_fails_for_a_wrong_start():
    assert vd.check_first_passage()[0]
    assert not vd.check_first_passage(lambda r: vd.first_passage_formula(r, start=1.5))[0]
