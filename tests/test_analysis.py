"""The analysis scripts' quick modes, asserted on the JSON they write."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, out, *extra):
    proc = subprocess.run([sys.executable, str(ROOT / "analysis" / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_derive_density(tmp_path):
    out = _run("derive_density.py", tmp_path)
    d = json.loads((tmp_path / "derivation.json").read_text())
    assert all(d["verified"].values()), d["verified"]
    assert set(d["verified"]) >= {"drift_solution", "lyapunov_dH_dt_nonpositive",
                                  "stationary_density_exp_minus_lam_H_over_D",
                                  "mass_at_hw_le_h_never_decreases_all_cases"}
    c = d["cases"]["6/differential"]
    assert 0 in c["sinks"] and c["cdf_monotone"]
    for k in range(1, 5):  # +-2^k (HW 1) collect mass; level 1 feeds 0 instead
        assert 2**k in c["sinks"] and -(2**k) in c["sinks"]
    assert 1 in c["sources"] and -1 in c["sources"]
    assert c["strict_local_minima_are_sinks"]
    assert d["counterexamples"]["twos_complement_far_sinks"]["holds"]
    md = (tmp_path / "density_derivation.md").read_text()
    assert "Fokker" in md and "\\rho" in md and "ok" in out


def test_verify_density(tmp_path):
    _run("verify_density.py", tmp_path)
    v = json.loads((tmp_path / "verification.json").read_text())
    assert all(v["verified"].values()), v["verified"]
    errs = list(v["pde_vs_mc_max_error"].values())
    assert errs[-1] < errs[0] and errs[-1] < 0.02
    hw = v["expected_hw_pde"]
    assert all(b <= a + 1e-9 for a, b in zip(hw, hw[1:])) and hw[-1] < hw[0]
    assert v["stationary"]["ks_pvalue"] > 0.01
    assert v["real_weights"]["tv_predicted_vs_hamq"] < v["real_weights"]["tv_baseline_vs_hamq"]
    for fig in ("density_snapshots", "mass_per_hw", "pde_vs_mc", "stationary", "real_weights"):
        assert (tmp_path / f"{fig}.png").stat().st_size > 5000
