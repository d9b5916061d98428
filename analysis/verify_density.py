"""Numerically verify the weight-density evolution derived in derive_density.py.

    python analysis/verify_density.py [--quick] [--out DIR]

1. Solve the continuity equation (finite-volume upwind in x, scipy.integrate.solve_ivp in t) from a
   Laplacian initial density, and move Monte Carlo particles with the gradient hamqcore's C++ kernel
   returns; compare their mass per level (the max error must shrink as particles/resolution grow).
2. Check that the mass at HW <= h never decreases and the expected HW never increases (PDE and MC).
3. With SGD noise (diffusion D), compare long-run particles with the stationary density
   exp(-eta lam H / D) (Kolmogorov-Smirnov test).
4. Real weights: train a small quantization-aware ResNet on scikit-learn's digits with and without
   the regularizer; predict the HamQ model's HW histogram by flowing the baseline's weights and check the
   prediction is closer to the measured one than the baseline is.

Writes figures (PNG) and DIR/verification.json; exits non-zero when a verified statement fails.
Time is in units of 1 / (eta lam): the regularizer's velocity is -H'(x).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.integrate import solve_ivp

import hamqcore


class Model:
    """The relaxed HW of a bit width and encoding, on the clamped range [-hi, hi]."""

    def __init__(self, bits: int, encoding: str = "differential"):
        self.bits, self.encoding = bits, encoding
        self.hi = (1 << (bits - 1)) - 1
        lv = np.arange(-self.hi, self.hi + 1)
        self.levels = lv
        self.hw = hamqcore.hamming_weight(lv.astype(np.int32), bits, encoding).astype(np.int64)

    def H(self, x):
        return hamqcore.relaxed_hw(np.asarray(x, np.float64), self.bits, self.encoding)[0]

    def dH(self, x):
        return hamqcore.relaxed_hw(np.asarray(x, np.float64), self.bits, self.encoding)[1]

    def level_of(self, x):
        return np.clip(np.floor(np.asarray(x) + 0.5), -self.hi, self.hi).astype(np.int64)

    def hw_of(self, x):
        return self.hw[self.level_of(x) + self.hi]


def laplace_density(x, scale):
    return np.exp(-np.abs(x) / scale)


# ------------------------------------------------------------------------------------------------
# PDE: finite volumes
# ------------------------------------------------------------------------------------------------


class FiniteVolume:
    def __init__(self, model: Model, per_unit: int, D: float = 0.0):
        self.m, self.D = model, D
        self.dx = 1.0 / per_unit
        self.faces = np.linspace(-model.hi, model.hi, 2 * model.hi * per_unit + 1)
        self.centres = 0.5 * (self.faces[1:] + self.faces[:-1])
        self.v = -model.dH(self.faces)  # velocity at faces (mean slope at integers, 0 outside)
        self.v[0] = self.v[-1] = 0.0    # the clamped range: nothing leaves

    def rhs(self, t, rho):
        v = self.v
        up = np.where(v[1:-1] > 0, rho[:-1], rho[1:])         # upwind value at interior faces
        flux = np.zeros(len(rho) + 1)
        flux[1:-1] = v[1:-1] * up
        if self.D > 0:
            flux[1:-1] -= self.D * (rho[1:] - rho[:-1]) / self.dx
        return -(flux[1:] - flux[:-1]) / self.dx

    def initial(self, scale):
        rho = laplace_density(self.centres, scale)
        return rho / (rho.sum() * self.dx)

    def solve(self, rho0, times):
        sol = solve_ivp(self.rhs, (0, times[-1]), rho0, t_eval=times, method="RK45", rtol=1e-7, atol=1e-10)
        if not sol.success:
            raise RuntimeError(sol.message)
        return sol.y.T  # (len(times), cells)

    def level_mass(self, rho):
        """Mass of each rounded level (cells split at half-integers: faces fall on them exactly)."""
        lv = self.m.level_of(self.centres)
        return np.bincount(lv + self.m.hi, weights=rho * self.dx, minlength=len(self.m.levels))


# ------------------------------------------------------------------------------------------------
# Monte Carlo
# ------------------------------------------------------------------------------------------------


def sample_laplace(model, n, scale, rng):
    x = rng.laplace(0, scale, size=4 * n)
    x = x[np.abs(x) < model.hi][:n]
    assert len(x) == n
    return x


def simulate(model, x, t_end, dt, D=0.0, rng=None, record=()):
    """Euler(-Maruyama) steps of dx = -H'(x) dt (+ sqrt(2 D) dW), reflected into [-hi, hi]."""
    snaps = {}
    steps = int(round(t_end / dt))
    rec = {int(round(t / dt)): t for t in record}
    for s in range(steps + 1):
        if s in rec:
            snaps[rec[s]] = x.copy()
        if s == steps:
            break
        x = x - model.dH(x) * dt
        if D > 0:
            x = x + np.sqrt(2 * D * dt) * rng.standard_normal(len(x))
            x = np.where(x > model.hi, 2 * model.hi - x, x)
            x = np.where(x < -model.hi, -2 * model.hi - x, x)
    return x, snaps


def mc_level_mass(model, x):
    return np.bincount(model.level_of(x) + model.hi, minlength=len(model.levels)) / len(x)


def hw_mass(model, level_mass):
    """Mass per HW value from mass per level."""
    return np.bincount(model.hw, weights=level_mass, minlength=model.bits + 1)


# ------------------------------------------------------------------------------------------------


def check_pde_vs_mc(bits, settings, times, scale, rng):
    model = Model(bits)
    errors = []
    last = None
    for per_unit, n in settings:
        fv = FiniteVolume(model, per_unit)
        pde = fv.solve(fv.initial(scale), times)
        x0 = sample_laplace(model, n, scale, rng)
        _, snaps = simulate(model, x0, times[-1], dt=0.01, record=times)
        err = max(np.abs(fv.level_mass(pde[i]) - mc_level_mass(model, snaps[t])).max() for i, t in enumerate(times))
        errors.append(err)
        last = (model, fv, pde, snaps)
    return errors, last


def monotone_checks(model, level_masses, tol):
    """mass at HW <= h non-decreasing for every h; expected HW non-increasing."""
    cdfs = np.array([np.cumsum(hw_mass(model, lm)) for lm in level_masses])
    mean_hw = np.array([(hw_mass(model, lm) * np.arange(model.bits + 1)).sum() for lm in level_masses])
    cdf_ok = bool((np.diff(cdfs, axis=0) >= -tol).all())
    mean_ok = bool((np.diff(mean_hw) <= tol).all())
    return cdf_ok, mean_ok, cdfs, mean_hw


def stationary_test(bits, D, n, t_end, dt, rng):
    model = Model(bits)
    x0 = rng.uniform(-model.hi, model.hi, n)  # spread over the range: equilibrates in t ~ O(1 / D)
    x, _ = simulate(model, x0, t_end, dt, D=D, rng=rng)
    grid = np.linspace(-model.hi, model.hi, 20001)
    dens = np.exp(-model.H(grid) / D)
    cdf_vals = np.concatenate([[0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(grid))])
    cdf_vals /= cdf_vals[-1]
    ks = stats.kstest(x, lambda q: np.interp(q, grid, cdf_vals))
    return model, x, grid, dens / np.trapezoid(dens, grid), ks


def real_weights(quick, rng):
    """Train a small 6-bit quantization-aware ResNet on digits with lam = 0 and lam > 0 (hamqcore's
    trainer, fixed per-channel grid); flow the baseline's weights and compare HW histograms."""
    from hamqcore import data
    from hamqcore.quant import QuantLayer
    from hamqcore.train import TrainConfig, train

    digits = data.digits()

    def run(lam):
        cfg = TrainConfig(model="resnet18", width=4, data="digits", w_bits=6, a_bits=6, lam=lam,
                          epochs=4 if quick else 10, warmup_epochs=1, ramp_epochs=1)
        model = train(cfg, dataset=digits, progress=False, log=lambda s: None).model
        units = [(m.weight.detach() / m.weight_scale().detach()).flatten().numpy()
                 for m in model.modules() if isinstance(m, QuantLayer)]
        return np.concatenate(units)

    base, hamq = run(0.0), run(1.0)
    model = Model(6)
    h_base = np.bincount(model.hw_of(base), minlength=7) / len(base)
    h_hamq = np.bincount(model.hw_of(hamq), minlength=7) / len(hamq)
    # flow the baseline for the time that matches the HamQ model's mean HW
    times = np.linspace(0, 1.0, 41)
    _, snaps = simulate(model, np.clip(base, -model.hi, model.hi), times[-1], dt=0.025, record=times)
    means = {t: (np.bincount(model.hw_of(v), minlength=7) / len(v) * np.arange(7)).sum() for t, v in snaps.items()}
    target = (h_hamq * np.arange(7)).sum()
    t_best = min(means, key=lambda t: abs(means[t] - target))
    h_pred = np.bincount(model.hw_of(snaps[t_best]), minlength=7) / len(base)
    tv = lambda a, b: 0.5 * np.abs(a - b).sum()  # noqa: E731
    return {"hist_baseline": h_base, "hist_hamq": h_hamq, "hist_predicted": h_pred, "flow_time": t_best,
            "tv_baseline_vs_hamq": tv(h_base, h_hamq), "tv_predicted_vs_hamq": tv(h_pred, h_hamq)}


def figures(out, model, fv, pde, times, snaps, cdfs, st, real):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i, t in enumerate(times):
        ax.plot(fv.centres, pde[i], lw=1, label=f"t={t:g}")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, None)
    ax.set_xlabel("x = w / scale (integer units)")
    ax.set_ylabel("density")
    ax.set_title(f"density under the HamQ drift ({model.bits}-bit, differential)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "density_snapshots.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    hw = np.diff(np.concatenate([np.zeros((len(times), 1)), cdfs], axis=1), axis=1)
    for h in range(hw.shape[1]):
        ax.plot(times, hw[:, h], marker="o", ms=3, label=f"HW={h}")
    ax.set_xlabel("t (1 / eta lam)")
    ax.set_ylabel("mass")
    ax.set_title("mass per HW value")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "mass_per_hw.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    t = times[-1]
    ax.bar(model.levels, fv.level_mass(pde[-1]), width=0.8, alpha=0.6, label="PDE")
    ax.plot(model.levels, mc_level_mass(model, snaps[t]), "k.", label="Monte Carlo")
    ax.set_xlabel("level")
    ax.set_ylabel("mass")
    ax.set_title(f"PDE vs Monte Carlo at t={t:g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pde_vs_mc.png", dpi=120)
    plt.close(fig)

    smodel, xs, grid, dens, ks = st
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(xs, bins=np.arange(-smodel.hi, smodel.hi + 0.25, 0.25), density=True, alpha=0.5, label="simulation")
    ax.plot(grid, dens, "k", lw=1, label="exp(-H/D) / Z")
    ax.set_title(f"stationary density ({smodel.bits}-bit), KS p={ks.pvalue:.3f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "stationary.png", dpi=120)
    plt.close(fig)

    if real:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        k = np.arange(len(real["hist_baseline"]))
        for j, (key, label) in enumerate((("hist_baseline", "baseline"), ("hist_hamq", "HamQ (trained)"),
                                          ("hist_predicted", "baseline + drift (predicted)"))):
            ax.bar(k + (j - 1) * 0.27, real[key], 0.27, label=label)
        ax.set_xlabel("HW")
        ax.set_ylabel("fraction of weights")
        ax.set_title("real weights (digits ResNet, 6-bit)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "real_weights.png", dpi=120)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller grids and particle counts (< 30 s)")
    ap.add_argument("--out", default="hamq_density")
    ap.add_argument("--no-real", action="store_true", help="skip the trained-weights comparison")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    bits, scale = 6, 6.0
    times = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 2.0])
    settings = [(2, 4_000), (16, 400_000)] if args.quick else [(2, 10_000), (8, 100_000), (32, 1_000_000)]
    errors, (model, fv, pde, snaps) = check_pde_vs_mc(bits, settings, times, scale, rng)
    pde_levels = [fv.level_mass(r) for r in pde]
    mc_levels = [mc_level_mass(model, snaps[t]) for t in times]
    pde_cdf_ok, pde_mean_ok, cdfs, mean_hw = monotone_checks(model, pde_levels, tol=1e-6)
    mc_cdf_ok, mc_mean_ok, _, mc_mean = monotone_checks(model, mc_levels, tol=1e-12)  # per-particle exact; float sums
    st = stationary_test(4, D=0.5, n=5_000 if args.quick else 40_000, t_end=100 if args.quick else 150,
                         dt=0.01 if args.quick else 0.005, rng=rng)
    real = None if args.no_real else real_weights(args.quick, rng)
    verified = {
        "pde_vs_mc_error_shrinks": bool(all(b < a for a, b in zip(errors, errors[1:]))),
        "pde_vs_mc_error_small": bool(errors[-1] < 0.02),
        "pde_mass_at_hw_le_h_never_decreases": pde_cdf_ok,
        "pde_expected_hw_never_increases": pde_mean_ok,
        "mc_mass_at_hw_le_h_never_decreases": mc_cdf_ok,
        "mc_expected_hw_never_increases": mc_mean_ok,
        "stationary_density_ks_p_above_0.01": bool(st[4].pvalue > 0.01),
    }
    if real is not None:
        verified["real_weights_prediction_closer_than_baseline"] = bool(
            real["tv_predicted_vs_hamq"] < real["tv_baseline_vs_hamq"])
    result = {
        "verified": verified, "bits": bits, "initial": f"Laplace(scale={scale})", "times": times.tolist(),
        "pde_vs_mc_max_error": dict(zip([f"{p}/unit,{n} particles" for p, n in settings], errors)),
        "expected_hw_pde": mean_hw.tolist(), "expected_hw_mc": mc_mean.tolist(),
        "mass_at_hw_le_h_pde": cdfs.tolist(),
        "stationary": {"bits": 4, "D": 0.5, "initial": "uniform", "ks_statistic": float(st[4].statistic), "ks_pvalue": float(st[4].pvalue)},
        "real_weights": None if real is None else {k: (v.tolist() if isinstance(v, np.ndarray) else float(v))
                                                     for k, v in real.items()},
        "seconds": time.perf_counter() - t0,
    }
    figures(out, model, fv, pde, times, snaps, cdfs, st, real)
    (out / "verification.json").write_text(json.dumps(result, indent=2))
    for k, v in verified.items():
        print(f"{'ok  ' if v else 'FAIL'} {k}")
    print(f"PDE vs MC max level-mass error: {', '.join(f'{e:.4f}' for e in errors)}")
    print(f"expected HW (PDE): {' -> '.join(f'{m:.3f}' for m in mean_hw)}")
    print(f"stationary KS: D={0.5}, p={st[4].pvalue:.3f}")
    if real is not None:
        print(f"real weights: TV(baseline, HamQ)={real['tv_baseline_vs_hamq']:.3f}, "
              f"TV(predicted, HamQ)={real['tv_predicted_vs_hamq']:.3f} (flow time {real['flow_time']:.3f})")
    print(f"wrote {out}/verification.json and figures ({result['seconds']:.1f} s)")
    return 0 if all(verified.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
