"""Derive how the HamQ regularizer evolves the density of weights, symbolically (sympy) and by
exhaustive exact case analysis over every level for bits 2..8 and every encoding.

    python analysis/derive_density.py [--quick] [--out DIR]

Writes DIR/density_derivation.md (the equations, LaTeX) and DIR/derivation.json (every verified
statement); exits non-zero if any statement fails.

Setting. x = w / scale is a weight in integer units and H the relaxed HW exactly as hamqcore
implements it: piecewise linear between integers, H(k) = HW(k), slope D_k = HW(k+1) - HW(k) on
(k, k+1), the mean slope at an integer, clamped outside [-(2^(b-1)-1), 2^(b-1)-1]. Under gradient
flow on lam * H with learning rate eta, a weight moves with velocity v(x) = -eta lam H'(x).
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import sympy as sp

import hamqcore

ENCODINGS = hamqcore.ENCODINGS


def levels(bits):
    hi = (1 << (bits - 1)) - 1
    return np.arange(-hi, hi + 1)


def hw_table(bits, encoding):
    return {int(k): int(h) for k, h in zip(levels(bits), hamqcore.hamming_weight(levels(bits).astype(np.int32), bits, encoding))}


# ------------------------------------------------------------------------------------------------
# 1. Symbolic: the drift solution on one interval, the Lyapunov property, the stationary density
# ------------------------------------------------------------------------------------------------


def symbolic_checks():
    x, t, k, eta, lam, D, hk, dk = sp.symbols("x t k eta lambda D h_k Delta_k", real=True)
    eta, lam, D = sp.symbols("eta lambda D", positive=True)
    F = sp.Function("F")
    rho = sp.Function("rho")
    H = hk + (x - k) * dk                     # relaxed HW on (k, k+1)
    v = -eta * lam * sp.diff(H, x)            # constant velocity -eta lam Delta_k
    # continuity equation rho_t + (rho v)_x = 0 with constant v: translation rho0(x - v t)
    sol = F(x - v * t)
    residual = sp.simplify(sp.diff(sol, t) + sp.diff(sol * v, x))
    pde = sp.Eq(sp.diff(rho(x, t), t) + v * sp.diff(rho(x, t), x), 0)
    pdsolved = sp.pdsolve(pde)
    # Lyapunov: along a trajectory dH/dt = H'(x) x' = -eta lam H'(x)^2 <= 0
    dHdt = sp.simplify(sp.diff(H, x) * v)
    lyapunov = sp.simplify(dHdt + eta * lam * dk**2) == 0
    # Fokker-Planck with diffusion D: zero-flux stationary density exp(-eta lam H / D)
    rho_s = sp.exp(-eta * lam * H / D)
    flux = rho_s * v - D * sp.diff(rho_s, x)
    fp_stationary = sp.simplify(flux) == 0
    fp_residual = sp.simplify(-sp.diff(rho_s * v, x) + D * sp.diff(rho_s, x, 2))
    return {
        "drift_solution": {"statement": "on (k, k+1), rho(x, t) = rho0(x + eta lam Delta_k t) solves rho_t = -(rho v)_x",
                           "holds": residual == 0, "pdsolve": str(pdsolved)},
        "lyapunov": {"statement": "dH(x(t))/dt = -eta lam (H'(x))^2 <= 0 along every trajectory", "holds": bool(lyapunov),
                     "dH_dt": str(dHdt)},
        "stationary": {"statement": "rho_s ∝ exp(-eta lam H(x) / D) has zero probability flux (Fokker-Planck)",
                       "holds": bool(fp_stationary) and fp_residual == 0},
        "latex": {
            "H": sp.latex(sp.Eq(sp.Symbol("H(x)"), H)),
            "v": sp.latex(sp.Eq(sp.Symbol("v(x)"), v)),
            "continuity": r"\partial_t \rho = -\partial_x(\rho\, v)",
            "fokker_planck": r"\partial_t \rho = -\partial_x(\rho\, v) + D\, \partial_x^2 \rho",
            "drift_solution": sp.latex(sp.Eq(sp.Symbol(r"\rho(x,t)"), sol.subs(F, sp.Function(r"\rho_0")))),
            "dHdt": sp.latex(sp.Eq(sp.Symbol(r"\frac{d}{dt}H(x(t))"), dHdt)),
            "stationary": sp.latex(sp.Eq(sp.Symbol(r"\rho_s(x)"), sp.Symbol("C") * rho_s)),
        },
    }


# ------------------------------------------------------------------------------------------------
# 2. Exhaustive exact case analysis over all levels
# ------------------------------------------------------------------------------------------------


def classify(bits, encoding):
    """Flow direction on every interval and the type of every level (exact integers)."""
    h = hw_table(bits, encoding)
    lv = sorted(h)
    lo, hi = lv[0], lv[-1]
    # direction on (k, k+1): -1 towards k, +1 towards k+1, 0 at rest (sign of -Delta_k)
    direction = {k: -int(np.sign(h[k + 1] - h[k])) for k in lv[:-1]}
    kinds = {}
    for m in lv:
        left_in = m > lo and direction[m - 1] == +1     # mass on (m-1, m) moves right, into m
        right_in = m < hi and direction[m] == -1        # mass on (m, m+1) moves left, into m
        left_out = m > lo and direction[m - 1] == -1
        right_out = m < hi and direction[m] == +1
        if (left_in or right_in) and not (left_out or right_out):
            kinds[m] = "sink"
        elif (left_out or right_out) and not (left_in or right_in):
            kinds[m] = "source"
        elif (left_in and right_out) or (right_in and left_out):
            kinds[m] = "pass-through"
        else:
            kinds[m] = "at rest"
    return h, direction, kinds


def trajectory_hw(bits, encoding, start: Fraction, h, direction):
    """HW(round(x)) along the exact trajectory of a particle starting at ``start`` (pure drift),
    visiting every interval it crosses, until it rests. Returns the sequence of rounded HW values."""
    lo, hi = min(h), max(h)
    x = start
    seq = [h[_round(x, lo, hi)]]
    for _ in range(4 * (hi - lo) + 4):
        k = int(np.floor(float(x)))
        if x == hi:
            k = hi - 1
        if Fraction(k) == x and k > lo:  # at an integer: the mean slope picks the side
            d = h[k + 1] - h[k - 1] if k < hi else h[k] - h[k - 1]
            step = -int(np.sign(d))
            if step == 0:
                break
            nxt_interval = k if step > 0 else k - 1
            if nxt_interval > hi - 1 or direction[nxt_interval] != step:
                break  # the interval it would enter pushes back or rests: the particle stays
            x = Fraction(k + step)
        else:
            if k >= hi:
                break
            dirn = direction[k]
            if dirn == 0:
                break
            x = Fraction(k + (1 if dirn > 0 else 0))
        seq.append(h[_round(x, lo, hi)])
    return seq


def _round(x: Fraction, lo, hi) -> int:
    r = int(np.floor(float(x) + 0.5))
    return min(hi, max(lo, r))


def case_analysis(bit_range):
    out = {}
    ok = True
    for bits in bit_range:
        for enc in ENCODINGS:
            h, direction, kinds = classify(bits, enc)
            lv = sorted(h)
            # every particle start: each level and each half-level (covers every interval)
            starts = [Fraction(2 * k + j, 2) for k in lv[:-1] for j in (0, 1)] + [Fraction(lv[-1])]
            monotone = all(all(a >= b for a, b in zip(seq, seq[1:]))
                           for s in starts for seq in [trajectory_hw(bits, enc, s, h, direction)])
            # the relaxed H strictly decreases on every interval where the particle moves
            descends = all(direction[k] == 0 or (h[k + 1] - h[k]) * direction[k] < 0 for k in direction)
            sinks = [m for m in lv if kinds[m] == "sink"]
            sources = [m for m in lv if kinds[m] == "source"]
            strict_minima = [m for m in lv if all(h[m] < h[n] for n in (m - 1, m + 1) if n in h)]
            ok &= monotone and descends and set(strict_minima) <= set(sinks)
            out[f"{bits}/{enc}"] = {
                "bits": bits, "encoding": enc, "cdf_monotone": monotone, "flow_descends_H": descends,
                "sinks": sinks, "sources": sources, "min_hw_sinks": sorted({h[m] for m in sinks}),
                "strict_local_minima_are_sinks": set(strict_minima) <= set(sinks),
                "sink_rates": {m: _sink_rate(m, h, direction) for m in sinks},
            }
    return out, ok


def _sink_rate(m, h, direction):
    """Mass flux into sink m per unit density at its sides, in units of eta*lam:
    |Delta| of each interval that flows into m."""
    rate = 0
    if m - 1 in h and direction.get(m - 1) == +1:
        rate += abs(h[m] - h[m - 1])
    if m + 1 in h and direction.get(m) == -1:
        rate += abs(h[m + 1] - h[m])
    return rate


def what_does_not_hold(bits=6):
    """Counter-examples, found by search: (a) a task-loss drift can move a weight to a higher HW;
    (b) two's complement sends small negative weights towards -2^(b-1)+..., far from zero."""
    h = hw_table(bits, "differential")
    # (a) x' = -eta (L'(x) + lam H'(x)): on an interval where HW rises to the right the regularizer
    # pushes left, but a task loss L = (x - T)^2 / 2 with its minimum T further right pushes harder.
    k = next(k for k in sorted(h)[:-1] if k >= 0 and h[k + 1] > h[k])
    x0, target, lam = Fraction(k) + Fraction(1, 4), k + 5, Fraction(1, 10)
    velocity = -((x0 - target) + lam * (h[k + 1] - h[k]))   # in units of eta
    crosses_to = k + 1                                        # it passes k + 1/2 and rounds to k + 1
    task_raises_hw = bool(velocity > 0 and h[crosses_to] > h[_round(x0, min(h), max(h))])
    # (b) under two's complement the sinks include large negative levels
    _, _, kinds = classify(bits, "twos_complement")
    neg_sinks = [m for m, kd in kinds.items() if kd == "sink" and m < -(1 << (bits - 2))]
    return {
        "task_loss_can_raise_hw": {"holds": task_raises_hw, "start": str(x0), "task_minimum": target,
                                   "velocity": str(velocity),
                                   "statement": "with a task-loss drift added, a weight can move to a higher HW "
                                                "(monotonicity needs |L'(x)| < lam |H'(x)|)"},
        "twos_complement_far_sinks": {"holds": len(neg_sinks) > 0, "sinks": neg_sinks,
                                      "statement": "under two's complement, sinks include large negative levels: "
                                                   "HW falls but weights are pulled far from zero"},
    }


def write_markdown(path: Path, sym, cases, counter, bits_shown=4):
    lines = ["# How the HamQ regularizer evolves the weight density", "",
             "Generated by `analysis/derive_density.py`; every statement below is checked by the script.", "",
             "## Model", "",
             f"$${sym['latex']['H']} \\quad (x \\in (k, k+1)),\\qquad {sym['latex']['v']}$$", "",
             f"Continuity equation: $${sym['latex']['continuity']}$$", "",
             f"Fokker–Planck with SGD noise as diffusion $D$: $${sym['latex']['fokker_planck']}$$", "",
             "## Pure drift", "",
             f"On each interval the velocity is constant, so $${sym['latex']['drift_solution']}$$ "
             "(translation along characteristics): mass on $(k, k+1)$ moves towards the end with the lower HW "
             "and piles up there; where $\\Delta_k = 0$ it rests.", "",
             f"Along every trajectory $${sym['latex']['dHdt']} \\le 0,$$ so each weight's relaxed HW never "
             "increases, and neither does its rounded level's HW (checked exactly below): the probability mass at "
             "HW $\\le h$ never decreases for any $h$, and the expected HW never increases.", "",
             "## With diffusion", "",
             f"The zero-flux stationary density is $${sym['latex']['stationary']}$$ on the clamped range: "
             "high density at low HW, low density at high HW.", "",
             "## Exact case analysis (all levels, bits 2..8, every encoding)", "",
             "| bits | encoding | CDF of HW monotone | sinks (HW of sinks) | sources |", "|---|---|---|---|---|"]
    for c in cases.values():
        if c["bits"] <= bits_shown:
            lines.append(f"| {c['bits']} | {c['encoding']} | {c['cdf_monotone']} | {c['sinks']} ({c['min_hw_sinks']}) | {c['sources']} |")
    lines += ["", f"All {len(cases)} (bits, encoding) cases: monotone = "
              f"{all(c['cdf_monotone'] for c in cases.values())}.", "",
              "## What does not hold", ""]
    for c in counter.values():
        lines.append(f"* {c['statement']}: {'shown' if c['holds'] else 'NOT shown'}.")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="bits 2..6 only")
    ap.add_argument("--out", default="hamq_density")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sym = symbolic_checks()
    cases, cases_ok = case_analysis(range(2, 7 if args.quick else 9))
    counter = what_does_not_hold()
    verified = {
        "drift_solution": sym["drift_solution"]["holds"],
        "lyapunov_dH_dt_nonpositive": sym["lyapunov"]["holds"],
        "stationary_density_exp_minus_lam_H_over_D": sym["stationary"]["holds"],
        "mass_at_hw_le_h_never_decreases_all_cases": cases_ok,
        "task_loss_counterexample_found": counter["task_loss_can_raise_hw"]["holds"],
        "twos_complement_far_sinks_found": counter["twos_complement_far_sinks"]["holds"],
        "zero_is_a_sink_differential": all(0 in c["sinks"] for c in cases.values() if c["encoding"] == "differential"),
    }
    json.dump({"verified": verified, "symbolic": {k: v for k, v in sym.items() if k != "latex"},
               "cases": cases, "counterexamples": counter}, open(out / "derivation.json", "w"), indent=2, default=str)
    write_markdown(out / "density_derivation.md", sym, cases, counter)
    for k, v in verified.items():
        print(f"{'ok  ' if v else 'FAIL'} {k}")
    d8 = cases.get("8/differential")
    if d8:
        print(f"8-bit differential: {len(d8['sinks'])} sinks (HW {d8['min_hw_sinks']}), e.g. {d8['sinks'][:9]} ...")
    print(f"wrote {out / 'density_derivation.md'} and {out / 'derivation.json'}")
    return 0 if all(verified.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
