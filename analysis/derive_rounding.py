"""When does HW-aware rounding pick a lower-HW neighbour? The single-weight closed form (sympy) and a
check of the C++ kernel (hamqcore.rounding) against it on random cases.

    python analysis/derive_rounding.py [--quick] [--out DIR]

Writes DIR/rounding.json (statements with status and numbers); exits non-zero if a check fails.

Setting (cpp/include/hamqcore/rounding.hpp). Weight i of a row, at x levels after the earlier weights'
error feedback, takes the level q (within the radius of round(x)) minimising
    f(q) = a (x - q)^2 + lam C(q),   a = r s^2 / U_ii^2,
U the upper Cholesky factor of the damped H^-1 and r the row weight. With one input and no damping,
U_ii^2 = 1 / h, so a = r s^2 h.

RESULT. A lower-cost level q' beats the nearest level q exactly when
    lam (C(q) - C(q')) > a ((x - q')^2 - (x - q)^2).
For a neighbour q' = q +- 1 on x's side of q, at d = |x - q| <= 1/2, the right side is a (1 - 2 d) (on
the other side a (1 + 2 d)): a weight at the midpoint moves for any lam > 0, one on a level needs
lam (C(q) - C(q')) > a.
"""
from __future__ import annotations

import sys

import numpy as np
import sympy as sp

import hamqcore
from hamqcore import _core
from statements import Record, parse_args


def symbolic(rec: Record) -> dict:
    x, q, qp, a, lam, c, cp = sp.symbols("x q q' a lambda C C'", real=True)
    f = lambda level, cost: a * (x - level) ** 2 + lam * cost  # noqa: E731
    gap = sp.expand(f(q, c) - f(qp, cp))          # > 0: q' wins
    threshold = sp.solve(sp.Eq(gap, 0), lam)[0]   # lam* = a ((x - q')^2 - (x - q)^2) / (C - C')
    expect = a * ((x - qp) ** 2 - (x - q) ** 2) / (c - cp)
    rec.add("threshold", "q' beats q exactly when lam (C(q) - C(q')) > a ((x - q')^2 - (x - q)^2), a = r s^2 / U_ii^2",
            "proven", sp.simplify(threshold - expect) == 0, ["one weight's step of the greedy pass"],
            latex=sp.latex(sp.Eq(sp.Symbol(r"\lambda^*"), expect)))
    # neighbours: q' = q + 1 with x = q + d (|d| <= 1/2): (x - q')^2 - (x - q)^2 = 1 - 2 d
    d = sp.symbols("d", real=True)
    diff = sp.expand(((q + d) - (q + 1)) ** 2 - ((q + d) - q) ** 2)
    rec.add("neighbour", "for the neighbour q' = q + 1 and x = q + d: (x - q')^2 - (x - q)^2 = 1 - 2 d, so at the "
            "midpoint (d = 1/2) any lam > 0 moves the weight and on the level (d = 0) it needs lam dC > a",
            "proven", sp.simplify(diff - (1 - 2 * d)) == 0, [])
    return {"threshold": str(expect)}


def kernel_check(rec: Record, quick: bool) -> dict:
    """One weight, H = [h], damp 0: the kernel's choice against the closed form on random cases
    (radius 1, so the candidates are q - 1, q, q + 1)."""
    rng = np.random.default_rng(0)
    n = 3000 if quick else 30000
    wrong = 0
    for _ in range(n):
        bits = int(rng.integers(3, 9))
        hi = 2 ** (bits - 1) - 1
        x = float(rng.uniform(-hi + 1, hi - 1))
        h, s, r = float(rng.uniform(0.1, 5)), float(rng.uniform(0.1, 2)), float(rng.uniform(0.1, 3))
        lam = float(rng.exponential(2.0))
        enc = hamqcore.ENCODINGS[int(rng.integers(0, 4))]
        q, _ = _core.hw_aware_round(np.array([[x * s]]), np.array([[h]]), np.array([s]), np.array([r]), bits, enc,
                                    lam, 1, 0.0)
        a = r * s * s * h
        near = int(np.clip(np.rint(x), -hi, hi))
        cand = [c for c in (near - 1, near, near + 1) if -hi <= c <= hi]
        cost = {c: int(hamqcore.hamming_weight(np.array([c], np.int32), bits, enc)[0]) for c in cand}
        # the closed form: start from the nearest, switch to c when lam (C(best) - C(c)) > a (gap)
        best = near
        for c in cand:
            if c != near and lam * (cost[best] - cost[c]) > a * ((x - c) ** 2 - (x - best) ** 2):
                best = c
        wrong += int(q[0, 0]) != best
    rec.add("kernel_vs_threshold",
            f"the C++ kernel's choice equals the closed-form threshold rule on {n} random single-weight cases "
            "(widths 3..8, every encoding, random h, s, row weight and lam)", "numerically checked", wrong == 0,
            ["radius 1", "no damping"], cases=n, mismatches=wrong)
    return {"cases": n, "mismatches": wrong}


def main(argv=None) -> int:
    args, out = parse_args(__doc__, argv)
    rec = Record("derive_rounding.py")
    rec.values.update(symbolic(rec))
    rec.values.update(kernel_check(rec, args.quick))
    rec.write(out / "rounding.json", out / "rounding_derivation.md", "HW-aware rounding: the threshold")
    print("ok" if rec.ok else "FAILED")
    return 0 if rec.ok else 1


if __name__ == "__main__":
    sys.exit(main())
