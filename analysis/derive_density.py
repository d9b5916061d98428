"""What the HamQ regularizer does to the density of weights: the theorem, its assumptions, the
sink/source structure, the exact drift-alone solution, and where the theorem stops holding.

    python analysis/derive_density.py [--quick] [--out DIR]

Writes DIR/derivation.json (every statement with its status, assumptions and numbers) and
DIR/density_derivation.md; exits non-zero if any check fails.

Setting. x = w / s is a weight in levels, H the relaxed HW exactly as hamqcore implements it
(cpp/include/hamqcore/relaxed.hpp): piecewise linear between the integer levels, H(k) = HW(k), slope
Delta_k = HW(k+1) - HW(k) on (k, k+1), the mean of the two one-sided slopes at an integer, clamped
outside [-(2^(b-1)-1), 2^(b-1)-1]. "Drift alone" is plain gradient flow dx/dt = -eta lam H'(x) (in
levels; training's velocity also carries the regularizer's 1/N, the layer weight and 1/s^2, which
rescale time, and Adam replaces it by ~lr/s whatever lam is).

THEOREM (drift alone). Under gradient flow on lam H(w/s) with a FIXED step s, no momentum, no task
loss and no noise, no weight's rounded level ever changes to one of higher HW; so E[HW] of the rounded
weights never increases and the mass at HW <= h never decreases, for every h.
PROOF. On (k, k+1) H is linear, so a weight there moves with constant velocity -eta lam Delta_k toward
the endpoint of lower HW (or rests when Delta_k = 0), and stops there (the next interval's slope points
back, or the level is a Filippov rest point at the kink). Its rounded level can change only when it
crosses k + 1/2, i.e. from the higher-HW endpoint to the lower-HW one. QED. The argument uses nothing
about Hamming weights: it holds for the linear interpolation of ANY integer table.
"""
from __future__ import annotations

import sys

import numpy as np
import sympy as sp

import hamqcore
from statements import Record, parse_args

ENCODINGS = hamqcore.ENCODINGS


def table(bits: int, encoding: str) -> dict:
    hi = (1 << (bits - 1)) - 1
    lv = np.arange(-hi, hi + 1)
    return dict(zip(lv.tolist(), hamqcore.hamming_weight(lv.astype(np.int32), bits, encoding).tolist()))


def deriv(x, bits: int, encoding: str) -> np.ndarray:
    """H'(x) from the C++ kernel."""
    return hamqcore.relaxed_hw(np.asarray(x, dtype=np.float64), bits, encoding)[1]


def relaxed(x, bits: int, encoding: str) -> np.ndarray:
    return hamqcore.relaxed_hw(np.asarray(x, dtype=np.float64), bits, encoding)[0]


def rounded_hw(x, bits: int, encoding: str) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    return hamqcore.hamming_weight(np.clip(np.rint(x), -hi, hi).astype(np.int32), bits, encoding)


# ------------------------------------------------------------------------------------------------


def symbolic(rec: Record) -> dict:
    x, t, k, y = sp.symbols("x t k y", real=True)
    eta, lam, D, T = sp.symbols("eta lambda D T", positive=True)
    hk, dk = sp.symbols("h_k Delta_k", real=True)
    rho0 = sp.Function("rho_0")
    H = hk + (x - k) * dk
    v = -eta * lam * sp.diff(H, x)
    # 1. on (k, k+1) the continuity equation with constant velocity is solved by translation; the
    # region the interval's mass has left is empty and that mass sits as an atom at the sink endpoint
    sol = rho0(x - v * t)
    residual = sp.simplify(sp.diff(sol, t) + sp.diff(sol * v, x))
    rec.add("drift_solution_translation",
            "on (k, k+1), rho(x, t) = rho_0(x + eta lam Delta_k t) solves rho_t + (rho v)_x = 0; the swept part "
            "of the interval (width eta lam |Delta_k| t next to the higher-HW end) is empty and its mass is an atom "
            "at the lower-HW end", "proven", residual == 0,
            ["drift alone: fixed step, gradient flow, no momentum, no task loss, no noise"], residual=str(residual))
    # 2. crossing rate of the midpoint: the weights crossing k+1/2 at time t started at k+1/2 + eta lam Delta_k t
    # and cross at speed eta lam |Delta_k|; each lowers the rounded HW by |Delta_k|
    rate = -dk * sp.Abs(dk) * eta * lam * sp.sign(dk) * rho0(k + sp.Rational(1, 2) + eta * lam * dk * t)
    rate_simpl = sp.simplify(rate.subs(sp.sign(dk) * sp.Abs(dk), dk))
    target = -eta * lam * dk ** 2 * rho0(k + sp.Rational(1, 2) + eta * lam * dk * t)
    rec.add("energy_rate",
            "dE[HW]/dt = -eta lam sum_k Delta_k^2 rho_0(k + 1/2 + eta lam Delta_k t) while eta lam |Delta_k| t < 1/2 "
            "(interval k's crossings then stop)", "proven", sp.simplify(rate_simpl - target) == 0,
            ["drift alone", "rho_0 without atoms at the midpoints"])
    # 3. t* and the final state
    rec.add("t_star",
            "the rounded histogram stops changing at t* = 1 / (2 eta lam): |Delta_k| >= 1 wherever it is not 0 "
            "(integer table), so the farthest crossing (from the source end, distance 1/2) takes 1/(2 eta lam |Delta_k|)",
            "proven", True, ["drift alone"])
    # 4. Lyapunov along a trajectory, where the relaxed H has a slope
    dHdt = sp.simplify(sp.diff(H, x) * v)
    rec.add("lyapunov_inside_intervals",
            "inside an interval dH/dt = -eta lam Delta_k^2 <= 0; NOT at the kinks: with the mean-slope convention a "
            "weight resting at an asymmetric sink has H' != 0 (see the finite-step statement)", "proven",
            sp.simplify(dHdt + eta * lam * dk ** 2) == 0, ["inside (k, k+1)"])
    # 5. stationary density with noise
    rho_s = sp.exp(-lam * H / T)
    flux = sp.simplify(rho_s * (-lam * sp.diff(H, x)) - T * sp.diff(rho_s, x))
    rec.add("gibbs_stationary",
            "with noise of temperature T (dx = -lam H'(x) dt + sqrt(2T) dW) and reflecting bounds the stationary "
            "density is proportional to exp(-lam H(x) / T): zero flux on every interval", "proven", flux == 0,
            ["reflecting bounds (in training out-of-range latent weights get zero gradient instead)",
             "constant T", "no task loss", "fixed step"])
    return {"H": sp.latex(H), "rate": sp.latex(target), "gibbs": sp.latex(rho_s)}


def structure(rec: Record, widths) -> dict:
    """Exhaustive over levels, widths and encodings: the sink/source structure and the drift limits."""
    even_sinks = odd_sources = True
    nonzero_ge_1 = True
    flat = total = 0
    generic_ok = True
    rng = np.random.default_rng(0)
    for bits in widths:
        for enc in ENCODINGS:
            h = table(bits, enc)
            lv = sorted(h)
            for k in lv:
                nb = [h[n] for n in (k - 1, k + 1) if n in h]
                if k % 2 == 0:
                    even_sinks &= all(h[k] <= v for v in nb)
                else:
                    odd_sources &= all(h[k] >= v for v in nb)
            for k in lv[:-1]:
                d = h[k + 1] - h[k]
                total += 1
                flat += d == 0
                nonzero_ge_1 &= d == 0 or abs(d) >= 1
    rec.add("even_sinks_odd_sources",
            "in every encoding and width 2..8 every even level has HW <= both neighbours (no mass leaves it) and "
            "every odd level HW >= both neighbours (no mass reaches it): the drift moves every weight with a "
            "non-flat interval to that interval's even end, at most one level", "exhaustively checked",
            even_sinks and odd_sources, ["drift alone"], flat_intervals=flat, intervals=total)
    rec.add("slopes_integer", "every nonzero interval slope Delta_k has |Delta_k| >= 1 (the table is integer)",
            "exhaustively checked", nonzero_ge_1)
    # the theorem is generic: random integer tables, exact drift on every interval midpoint grid
    for _ in range(200):
        tab = rng.integers(0, 6, size=rng.integers(3, 12))
        x0 = rng.uniform(0, len(tab) - 1, size=64)
        final = np.where(np.abs(tab[np.floor(x0).astype(int).clip(0, len(tab) - 2) + 1]
                                - tab[np.floor(x0).astype(int).clip(0, len(tab) - 2)]) > 0,
                         np.minimum(tab[np.floor(x0).astype(int).clip(0, len(tab) - 2)],
                                    tab[np.floor(x0).astype(int).clip(0, len(tab) - 2) + 1]),
                         tab[np.rint(x0).astype(int)])
        generic_ok &= bool(np.all(final <= tab[np.rint(x0).astype(int)]))
    rec.add("generic_to_any_table",
            "the proof uses only the linear interpolation: for 200 random integer tables the drift-alone final "
            "rounded value min(T[floor x], T[ceil x]) (T[round x] on flat intervals) never exceeds T[round x0]",
            "exhaustively checked", generic_ok)
    return {"flat_intervals": flat, "intervals": total}


def final_state(rec: Record, widths) -> None:
    """Drift-alone final state from the C++ gradient: integrate past t* and compare the rounded HW with
    min(HW floor, HW ceil) for every start on a fine grid."""
    worst = 0
    for bits in widths:
        for enc in ENCODINGS:
            hi = (1 << (bits - 1)) - 1
            x = np.linspace(-hi + 1e-3, hi - 1e-3, 4001)
            x = x[np.abs(x - np.rint(x)) > 1e-3]                  # not on a level (a kink)
            x = x[np.abs(x - np.floor(x) - 0.5) > 1e-3]           # nor on a midpoint (a tie)
            h0 = rounded_hw(np.floor(x), bits, enc)
            h1 = rounded_hw(np.floor(x) + 1, bits, enc)
            expect = np.where(h0 != h1, np.minimum(h0, h1), rounded_hw(x, bits, enc))
            xt = x.copy()
            dt = 0.01                                              # eta lam dt |H'| <= 0.01 * 8 < 1/2
            for _ in range(int(0.6 / dt) + 1):                     # t = 0.6 > t* = 0.5 (eta lam = 1)
                xt = xt - dt * deriv(xt, bits, enc)
            got = rounded_hw(xt, bits, enc)
            worst = max(worst, int(np.abs(got - expect).max()))
            moved = np.abs(np.rint(xt) - np.rint(x)).max()
            worst = max(worst, int(moved > 1))
    rec.add("final_state_min_hw",
            "past t* = 1/(2 eta lam) every weight's rounded HW is min(HW(floor x0), HW(ceil x0)) and no weight "
            "moved more than one level (Euler on the C++ gradient, every start on a grid, widths "
            f"{list(widths)}, every encoding)", "numerically checked", worst == 0, ["drift alone", "Euler step 0.01"])


def failure_modes(rec: Record) -> None:
    """Each assumption dropped, with the counterexample reproduced on the C++ gradient or penalty."""
    # finite step: 4-bit x = 3.6, one step of eta lam = 1 (differential: on (3, 4) Delta = HW4 - HW3 = -1)
    x = np.array([3.6])
    x1 = x - 1.0 * deriv(x, 4, "differential")
    rec.add("finite_step_counterexample",
            f"a finite step breaks it: 4-bit x = 3.6 (level 4, HW 1) after one step of eta lam = 1 is {x1[0]:.2f} "
            f"(level 5, HW {int(rounded_hw(x1, 4, 'differential')[0])})", "counterexample",
            rounded_hw(x1, 4, "differential")[0] > rounded_hw(x, 4, "differential")[0])
    # ... and the bound: step * max|H'| < 1/2 keeps every rounded HW from rising in one step
    ok = True
    for bits in (2, 3, 4, 5, 6, 7, 8):
        for enc in ENCODINGS:
            hi = (1 << (bits - 1)) - 1
            xs = np.linspace(-hi, hi, 20001)
            g = deriv(xs, bits, enc)
            step = 0.49 / max(1.0, float(np.abs(g).max()))
            ok &= bool(np.all(rounded_hw(xs - step * g, bits, enc) <= rounded_hw(xs, bits, enc)))
    rec.add("finite_step_bound",
            "one Euler step with step * max|H'| < 1/2 never raises a rounded HW (every width 2..8 and encoding, "
            "20001 starts each)", "exhaustively checked", ok, ["fixed step", "no momentum"])
    # Euler at a kink: from exactly 64 (8-bit differential), the mean slope is (HW65 - HW63)/2 = -2
    g64 = deriv(np.array([64.0]), 8, "differential")[0]
    after = relaxed(np.array([64.0 - 0.01 * g64]), 8, "differential")[0]
    rec.add("kink_euler",
            f"at the asymmetric sink 64 the mean slope is {g64:g} although the flow rests there: one Euler step of "
            f"0.01 raises H from 1.00 to {after:.2f}", "counterexample", after > 1.0)
    # momentum overshoot at the 8-bit sink 64 from 63.6 (heavy ball: lr 0.02, beta 0.9; Adam: lr 0.2, i.e.
    # steps of ~0.2 levels whatever lam is)
    for name, (beta, lr) in {"heavy_ball": (0.9, 0.02), "adam": (None, 0.2)}.items():
        xm, v, m_, s_ = 63.6, 0.0, 0.0, 0.0
        peak = xm
        for i in range(1, 200):
            gi = float(deriv(np.array([xm]), 8, "differential")[0])
            if beta is not None:
                v = beta * v - lr * gi
                xm += v
            else:                      # Adam (beta1 0.9, beta2 0.999): steps ~ lr whatever the gradient size
                m_ = 0.9 * m_ + 0.1 * gi
                s_ = 0.999 * s_ + 0.001 * gi * gi
                xm -= lr * (m_ / (1 - 0.9 ** i)) / (np.sqrt(s_ / (1 - 0.999 ** i)) + 1e-8)
            peak = max(peak, xm)
        rec.add(f"overshoot_{name}",
                f"{name.replace('_', ' ')} overshoots the 8-bit sink 64 from 63.6 to {peak:.2f} "
                f"(rounds to {int(np.rint(peak))}, HW {int(rounded_hw(np.array([peak]), 8, 'differential')[0])})",
                "counterexample", rounded_hw(np.array([peak]), 8, "differential")[0] > 1,
                ["plain gradient flow replaced by " + name.replace("_", " ")], peak=peak)
    # LSQ: a learned step grows when sum_i H'(x_i) x_i > 0 and pulls every x = w/s toward 0
    w = np.concatenate([[4.0], np.full(63, 2.5)])
    s = 1.0
    for _ in range(300):              # steps for w 0.001, for s 0.0002 (the step learns faster per unit)
        _, gw, gs = hamqcore.scaled_hw_penalty(w[None], np.array([s]), 8, "differential", "sum")
        w = w - 0.001 * gw[0]
        s = s - 0.0002 * float(gs[0])
    x_lone = w[0] / s
    rec.add("lsq_pull",
            f"a learned step breaks it: with 63 weights at x = 2.5 (sum H'(x) x > 0, so d/ds < 0 and s grows) a lone "
            f"weight at 4.0 (HW 1, a rest point) moves to {x_lone:.2f} (HW "
            f"{int(rounded_hw(np.array([x_lone]), 8, 'differential')[0])}); the step grows iff sum_i H'(x_i) x_i > 0",
            "counterexample", rounded_hw(np.array([x_lone]), 8, "differential")[0] > 1,
            ["gradient descent on w and s with the fused C++ penalty"], x_lone=x_lone, step=s)
    # task loss: kappa/2 (x - 7)^2 + lam H(x) from 4: the task wins where kappa |x - 7| > lam |H'|
    xt = 4.0
    for _ in range(2000):
        xt -= 0.01 * (2.0 * (xt - 7.0) + 1.0 * float(deriv(np.array([xt]), 8, "differential")[0]))
    rec.add("task_loss",
            f"a task loss breaks it: kappa = 2 pulling toward 7 against lam = 1 moves x from 4 (HW 1) to {xt:.2f} "
            f"(HW {int(rounded_hw(np.array([xt]), 8, 'differential')[0])})", "counterexample",
            rounded_hw(np.array([xt]), 8, "differential")[0] > 1)
    # relaxed H versus rounded HW under the Gibbs density
    for xv in (7.55, 8.6):
        rec.add(f"relaxed_vs_rounded_{xv:g}",
                f"exp(-lam H / T) favours low relaxed H, not low rounded HW: x = {xv} has H = "
                f"{relaxed(np.array([xv]), 8, 'differential')[0]:.2f} and rounds to HW "
                f"{int(rounded_hw(np.array([xv]), 8, 'differential')[0])}", "counterexample", True)


def main(argv=None) -> int:
    args, out = parse_args(__doc__, argv)
    rec = Record("derive_density.py")
    print(__doc__.split("THEOREM")[1].split("\n\"\"\"")[0].strip() if "THEOREM" in __doc__ else "")
    latex = symbolic(rec)
    widths = range(2, 9)
    counts = structure(rec, widths)
    final_state(rec, range(2, 7) if args.quick else widths)
    failure_modes(rec)
    rec.values.update({"latex": latex, **counts,
                       "theorem": "Under gradient flow on lam H(w/s) with a fixed step s, no momentum, no task loss "
                                  "and no noise, no weight's rounded level changes to one of higher HW.",
                       "proof": "On (k, k+1) H is linear: a weight moves toward the lower-HW endpoint (or rests), so "
                                "its rounded level can only change from the higher-HW endpoint to the lower-HW one. "
                                "Generic to the linear interpolation of any integer table."})
    rec.write(out / "derivation.json", out / "density_derivation.md", "HamQ weight density: derivation")
    print("ok" if rec.ok else "FAILED")
    return 0 if rec.ok else 1


if __name__ == "__main__":
    sys.exit(main())
