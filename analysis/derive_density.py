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
about Hamming weights: it holds for the linear interpolation of ANY integer table. What follows from
the HW's even sinks and odd sources (t* = 1/(2 eta lam), the final state min(HW floor, HW ceil), at most
one level) does not: generic tables send weights across several levels (hw_specific_not_generic).
ASSUMPTIONS (ASSUMPTIONS below): no initial mass on odd levels, nearest rounding with the penalty's
clip, an integer cost table (the demo's priced penalty is real-valued), and a step small enough for
gradient flow (step * max|H'| < 1/2).
"""
from __future__ import annotations

import sys

import numpy as np
import sympy as sp

import hamqcore
from flows import exact_flow, hw_table, quantile_grid
from statements import Record, parse_args

ENCODINGS = hamqcore.ENCODINGS


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
            "on (k, k+1), rho(x, t) = rho_0(x + eta lam Delta_k t) solves rho_t + (rho v)_x = 0 (sympy: a "
            "translation solves constant-velocity advection; that the swept part of the interval is empty and its "
            "mass an atom at the lower-HW end is checked on the exact flow: energy_rate, final_state_min_hw)",
            "proven", residual == 0,
            ["drift alone: fixed step, gradient flow, no momentum, no task loss, no noise"], residual=str(residual))
    # 2. the crossing rate (the energy_rate statement) is checked against the exact flow in
    # check_energy_rate below: a closed form compared with itself would prove nothing
    # 3. t*: checked on the exact flow (structure() below), not asserted here
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
    rate = -eta * lam * dk ** 2 * rho0(k + sp.Rational(1, 2) + eta * lam * dk * t)   # checked in check_energy_rate
    return {"H": sp.latex(H), "rate": sp.latex(rate), "gibbs": sp.latex(rho_s)}


def structure(rec: Record, widths) -> dict:
    """Exhaustive over levels, widths and encodings: the interval slopes."""
    nonzero_ge_1 = True
    flat = total = 0
    for bits in widths:
        for enc in ENCODINGS:
            d = np.diff(hw_table(bits, enc))
            total += d.size
            flat += int(np.sum(d == 0))
            nonzero_ge_1 &= bool(np.all((d == 0) | (np.abs(d) >= 1)))
    rec.add("slopes_integer", "every nonzero interval slope Delta_k has |Delta_k| >= 1 (the table is integer)",
            "exhaustively checked", nonzero_ge_1, flat_intervals=flat, intervals=total)
    return {"flat_intervals": flat, "intervals": total}


# ------------------------------------------------------------------------------------------------
# Checks against the exact flow. Each takes the closed form it checks as an argument, so that
# tests/test_analysis.py can feed it a wrong one and see it fail.
# ------------------------------------------------------------------------------------------------


def closed_form_t_star(eta_lam: float) -> float:
    """The time the rounded histogram stops changing: the farthest crossing starts at a source end,
    1/2 from the midpoint, at the slowest speed eta lam |Delta| = eta lam."""
    return 1.0 / (2.0 * eta_lam)


def _starts(hw: np.ndarray) -> np.ndarray:
    """Starts in index units on every interval, next to both ends and across it, never on a node or a
    midpoint (where the flow or the rounding is not defined)."""
    frac = np.concatenate([[1e-4, 2e-4, 1e-3], np.linspace(0.01, 0.49, 25), np.linspace(0.51, 0.99, 25),
                           [1 - 1e-3, 1 - 2e-4, 1 - 1e-4]])
    return (np.arange(len(hw) - 1)[:, None] + frac[None, :]).reshape(-1)


def check_t_star(t_star=closed_form_t_star, widths=range(2, 9), eta_lam: float = 0.8):
    """(passed, values): on the exact flow, no start changes its rounded level after t* (1 + 1e-9), and
    some start still changes it within (t* (1 - 1e-3), t*]: t* is the last change, not a bound."""
    ts = t_star(eta_lam)
    late, last = 0, 0
    for bits in widths:
        for enc in ENCODINGS:
            hw = hw_table(bits, enc)
            x0 = _starts(hw)
            final = np.rint(exact_flow(hw, x0, eta_lam, 1e6))
            late += int(np.sum(np.rint(exact_flow(hw, x0, eta_lam, ts * (1 + 1e-9))) != final))
            last += int(np.sum(np.rint(exact_flow(hw, x0, eta_lam, ts * (1 - 1e-3))) != final))
    return late == 0 and last > 0, {"t_star": ts, "changes_after_t_star": late, "changes_in_last_window": last}


def hw_final(hw_floor: np.ndarray, hw_ceil: np.ndarray, hw_round: np.ndarray) -> np.ndarray:
    """The closed-form final rounded HW: min(HW floor x0, HW ceil x0), or HW(round x0) on a flat interval."""
    return np.where(hw_floor != hw_ceil, np.minimum(hw_floor, hw_ceil), hw_round)


def check_final_state(final=hw_final, widths=range(2, 9), eta_lam: float = 1.0):
    """(passed, values): per weight, tolerance 0: the exact flow's final rounded HW equals ``final`` for
    every start, and no weight moves more than one level."""
    wrong = moved = total = 0
    for bits in widths:
        for enc in ENCODINGS:
            hw = hw_table(bits, enc)
            x0 = _starts(hw)
            xf = exact_flow(hw, x0, eta_lam, 1e6)
            lo = np.floor(x0).astype(np.int64)
            expect = final(hw[lo], hw[lo + 1], hw[np.rint(x0).astype(np.int64)])
            wrong += int(np.sum(hw[np.rint(xf).astype(np.int64)] != expect))
            moved += int(np.sum(np.abs(np.rint(xf) - np.rint(x0)) > 1))
            total += x0.size
    return wrong == 0 and moved == 0, {"weights": total, "wrong_final": wrong, "moved_beyond_one_level": moved}


COUNTEREXAMPLE_TABLE, COUNTEREXAMPLE_X0 = [3, 4, 5, 0, 0, 4, 5], 1.87


def _random_tables(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        tab = rng.integers(0, 6, size=int(rng.integers(3, 12)))
        x0 = rng.uniform(0, len(tab) - 1, size=64)
        x0 = x0[(np.abs(x0 - np.rint(x0)) > 1e-6) & (np.abs(x0 - np.floor(x0) - 0.5) > 1e-6)]
        yield tab, x0


def check_generic_theorem(n_tables: int = 200):
    """(passed, values): the theorem for ANY integer table: along the exact flow T[round x(t)] never
    increases (sampled at 40 times up to past the last event)."""
    rises = 0
    for tab, x0 in _random_tables(n_tables):
        prev = tab[np.rint(x0).astype(np.int64)]
        for t in np.linspace(0.0, 2.0 * len(tab), 41)[1:]:
            now = tab[np.rint(exact_flow(tab, x0, 1.0, t)).astype(np.int64)]
            rises += int(np.sum(now > prev))
            prev = now
    return rises == 0, {"tables": n_tables, "rises": rises}


def check_generic_final(final=hw_final, n_tables: int = 200):
    """(passed, values): whether ``final`` (a closed form in HW(floor), HW(ceil), HW(round)) gives the
    exact flow's final value on random integer tables."""
    bad_tables = 0
    for tab, x0 in _random_tables(n_tables):
        lo = np.floor(x0).astype(np.int64)
        expect = final(tab[lo], tab[lo + 1], tab[np.rint(x0).astype(np.int64)])
        got = tab[np.rint(exact_flow(tab, x0, 1.0, 1e6)).astype(np.int64)]
        bad_tables += int(np.any(got != expect))
    return bad_tables == 0, {"tables": n_tables, "tables_contradicting": bad_tables}


class TruncNormal:
    """N(mu, sigma) truncated to [-hi, hi] (levels): the initial density of the rate check."""

    def __init__(self, mu: float, sigma: float, hi: float):
        from scipy import stats

        self.d = stats.truncnorm((-hi - mu) / sigma, (hi - mu) / sigma, loc=mu, scale=sigma)

    def pdf(self, x):
        return self.d.pdf(x)

    def ppf(self, q):
        return self.d.ppf(q)


def closed_form_rate(t: float, hw: np.ndarray, rho0, eta_lam: float) -> float:
    """dE[HW]/dt = -eta lam sum_k Delta_k^2 rho_0(k + 1/2 + eta lam Delta_k t), each interval's term while
    eta lam |Delta_k| t < 1/2 (levels k = -hi..hi-1, rho_0 in levels)."""
    hi = (len(hw) - 1) // 2
    d = np.diff(hw).astype(np.float64)
    k = np.arange(-hi, hi)
    active = (d != 0) & (eta_lam * np.abs(d) * t < 0.5)
    return float(-eta_lam * np.sum(np.where(active, d ** 2 * rho0.pdf(k + 0.5 + eta_lam * d * t), 0.0)))


def check_energy_rate(rate=closed_form_rate, bits: int = 8, mu: float = 3.0, sigma: float = 5.0,
                      eta_lam: float = 1.0, atoms: int = 1_000_000):
    """(passed, values): E[HW](t) - E[HW](0) of the exact flow over rho_0's quantile atoms against the
    closed-form rate integrated in t (Simpson, 2000 steps per unit), at 12 times up to past t*. The
    tolerance is the atoms' discretisation bound sum_k 2 |Delta_k| / atoms (each crossing region's two
    ends are each off by at most one atom)."""
    hw = hw_table(bits, "differential")
    hi = (len(hw) - 1) // 2
    rho0 = TruncNormal(mu, sigma, hi)
    x0 = quantile_grid(rho0.ppf, atoms) + hi              # index units
    e0 = float(hw[np.rint(x0).astype(np.int64)].mean())
    tol = float(np.sum(2 * np.abs(np.diff(hw))) / atoms) + 1e-9
    worst, rows = 0.0, []
    for t in np.linspace(0.05, 0.6, 12):
        e_exact = float(hw[np.rint(exact_flow(hw, x0, eta_lam, t)).astype(np.int64)].mean()) - e0
        s = np.linspace(0.0, t, 2 * int(1000 * t) + 1)
        r = np.array([rate(v, hw, rho0, eta_lam) for v in s])
        e_cf = float((s[1] - s[0]) / 3 * (r[0] + r[-1] + 4 * r[1:-1:2].sum() + 2 * r[2:-1:2].sum()))
        worst = max(worst, abs(e_exact - e_cf))
        rows.append((float(t), e_exact, e_cf))
    return worst < tol, {"max_error": worst, "tolerance": tol, "t_exact_closed_form": rows}


ASSUMPTIONS = [
    "drift alone: plain gradient flow (no momentum, no Adam), no task loss, no noise",
    "a fixed step s (not learned)",
    "no initial mass on an odd level (a source: the flow leaving it is not unique)",
    "rounding to the nearest level with the same clip as the penalty's range",
    "an integer cost table (the HW; with real-valued bit prices even levels need not be sinks)",
    "gradient flow, i.e. a finite step with step * max|H'| < 1/2 (finite_step_bound); larger steps break it",
]


def exact_checks(rec: Record, quick: bool) -> None:
    """The closed forms against the exact flow (flows.exact_flow), each a check that a wrong closed
    form fails (tests/test_analysis.py feeds each one a wrong formula)."""
    widths = range(2, 7) if quick else range(2, 9)
    ok, v = check_t_star(widths=widths)
    rec.add("t_star",
            f"the rounded histogram stops changing at t* = 1 / (2 eta lam): on the exact flow (eta lam = 0.8, every "
            f"width {list(widths)} and encoding, starts next to every node) no rounded level changes after t* "
            f"({v['changes_after_t_star']} changes) and {v['changes_in_last_window']} still change within its last "
            "0.1 %", "numerically checked", ok, ASSUMPTIONS, **v)
    ok, v = check_final_state(widths=widths)
    rec.add("final_state_min_hw",
            f"every weight's final rounded HW is min(HW(floor x0), HW(ceil x0)) (HW(round x0) on a flat interval) and "
            f"no weight moves more than one level: exact flow, {v['weights']} starts, tolerance 0 "
            f"({v['wrong_final']} wrong, {v['moved_beyond_one_level']} moved further)", "numerically checked", ok,
            ASSUMPTIONS, **v)
    ok, v = check_generic_theorem(60 if quick else 200)
    rec.add("theorem_any_table",
            f"the theorem itself holds for the linear interpolation of ANY integer table: on the exact flow of "
            f"{v['tables']} random tables T[round x(t)] never increased ({v['rises']} rises)", "numerically checked",
            ok, ASSUMPTIONS[:2] + ASSUMPTIONS[3:4], **v)
    ok, v = check_generic_final(hw_final, 200)
    tab, x0 = COUNTEREXAMPLE_TABLE, COUNTEREXAMPLE_X0
    end = int(np.rint(exact_flow(tab, np.array([x0]), 1.0, 1e6))[0])
    rec.add("hw_specific_not_generic",
            f"t*, the final state min(T[floor x], T[ceil x]) and 'at most one level' are HW-specific (they need even "
            f"sinks and odd sources): for generic tables weights cross several levels. The exact flow contradicts the "
            f"min rule on {v['tables_contradicting']} of {v['tables']} random tables; T = {tab}, x0 = {x0} ends at "
            f"level {end} (value {tab[end]}), not {min(tab[1], tab[2])}", "counterexample",
            not ok and tab[end] == 3 and min(tab[1], tab[2]) == 4, **v, example_end=end)
    ok, v = check_energy_rate(atoms=400_000 if quick else 2_000_000)
    rec.add("energy_rate",
            f"dE[HW]/dt = -eta lam sum_k Delta_k^2 rho_0(k + 1/2 + eta lam Delta_k t) while eta lam |Delta_k| t < 1/2: "
            f"integrated in t it matches the exact flow of rho_0 = N(3, sigma = 5) (8-bit, quantile atoms) within "
            f"{v['max_error']:.1e} (tolerance {v['tolerance']:.1e}, the atoms' discretisation bound)",
            "numerically checked", ok, ASSUMPTIONS + ["rho_0 without atoms at the midpoints"],
            max_error=v["max_error"], tolerance=v["tolerance"])


def parity_structure(rec: Record) -> None:
    """The sink/source structure for EVERY width: the short proof, and the exhaustive check to 16 bits."""
    ok = True
    for bits in range(2, 17):
        for enc in ENCODINGS:
            hw = hw_table(bits, enc)
            even = (np.arange(len(hw)) - (len(hw) - 1) // 2) % 2 == 0
            left = np.concatenate([[np.iinfo(np.int64).max], hw[:-1]])
            right = np.concatenate([hw[1:], [np.iinfo(np.int64).max]])
            left_o = np.concatenate([[np.iinfo(np.int64).min], hw[:-1]])
            right_o = np.concatenate([hw[1:], [np.iinfo(np.int64).min]])
            ok &= bool(np.all(hw[even] <= np.minimum(left, right)[even]))
            ok &= bool(np.all(hw[~even] >= np.maximum(left_o, right_o)[~even]))
    rec.add("even_sinks_odd_sources",
            "every even level is a sink and every odd level a source, for every width: PROOF. Each encoding stores "
            "a code c whose parity is the level's (|q|, q + 2^(b-1), q mod 2^b; sign-magnitude adds the same sign "
            "bit to both neighbours of a nonzero level, and 0 is the least HW of all). For even c, "
            "popcount(c + 1) = popcount(c) + 1 and popcount(c - 1) = popcount(c) - 1 + tz(c) >= popcount(c) "
            "(tz >= 1 trailing zeros become ones); odd c is the mirror case. Checked exhaustively for widths 2..16 "
            "and every encoding", "proven", ok, ["an integer HW table", "levels within the symmetric range"])


def gibbs_training(rec: Record) -> None:
    """A true statement about HamQ TRAINING (not the penalty alone): at a lam-independent temperature,
    the stationary density is the baseline's tilted by exp(-lam H / T)."""
    lam, T = sp.symbols("lambda T", positive=True)
    p = sp.symbols("p1:5", positive=True)
    h = sp.symbols("h1:5", real=True)
    w = [pi * sp.exp(-lam * hi / T) for pi, hi in zip(p, h)]
    Z = sum(w)
    mean = sum(wi * hi for wi, hi in zip(w, h)) / Z
    var = sum(wi * hi ** 2 for wi, hi in zip(w, h)) / Z - mean ** 2
    ok = sp.simplify(sp.diff(mean, lam) + var / T) == 0
    rec.add("gibbs_training_tilt",
            "HamQ training as Langevin dynamics dtheta = -grad(L + lam H) dt + sqrt(2T) dW at a temperature T that does "
            "not depend on lam, with a confining task loss L (a learned step allowed: it is one more coordinate): the "
            "stationary density is p_lam = p_0 exp(-lam H / T) / Z(lam), p_0 the baseline's (lam = 0). Hence the density "
            "ratio p_lam / p_0 falls as H rises, P_lam(H <= h) rises with lam, and dE_lam[H]/dlam = -Var_lam(H) / T <= 0 "
            "(sympy on a 4-state family; the continuous case is the same differentiation under the integral). It holds "
            "for any penalty H, the crossbar-priced one included, and says nothing about the ROUNDED HW "
            "(gibbs_rounded_hw_can_rise in verify_density.py)", "proven", ok,
            ["Langevin dynamics at a lam-independent temperature (SGD noise is only roughly that)",
             "a confining L + lam H (the stationary density exists)", "the stationary regime (long training)"])


def priced_sinks(rec: Record) -> None:
    """With real-valued bit prices (weighting='crossbar') even levels need not be sinks."""
    cost = hamqcore.kernels.level_cost(np.array([0.3, 0.3, 2, 1, 1, 1, 1, 1]), 8, "differential")
    hi = 127
    end = float(exact_flow(cost, np.array([3.9 + hi]), 1.0, 1e6)[0] - hi)
    rec.add("priced_not_hw",
            f"with per-bit prices (0.3, 0.3, 2, 1, ...) (LSB first) the level costs are C(2) = {cost[hi + 2]:.1f}, "
            f"C(3) = {cost[hi + 3]:.1f}, C(4) = {cost[hi + 4]:.1f}: the odd level 3 is no source and a weight at 3.9 "
            f"flows through it to {end:g} (two levels), so the HW-specific results need an integer HW table",
            "counterexample", end == 2.0, end=end)


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
    xa, xb = np.array([7.55]), np.array([8.6])
    ha, hb = relaxed(xa, 8, "differential")[0], relaxed(xb, 8, "differential")[0]
    ra, rb = rounded_hw(xa, 8, "differential")[0], rounded_hw(xb, 8, "differential")[0]
    rec.add("relaxed_vs_rounded",
            f"exp(-lam H / T) favours low relaxed H, not low rounded HW: x = 7.55 has H = {ha:.2f} and rounds to HW "
            f"{ra}, x = 8.6 has the lower H = {hb:.2f} and rounds to the higher HW {rb}", "counterexample",
            hb < ha and rb > ra, h=[float(ha), float(hb)], rounded_hw=[int(ra), int(rb)])


def main(argv=None) -> int:
    args, out = parse_args(__doc__, argv)
    rec = Record("derive_density.py")
    print(__doc__.split("THEOREM")[1].split("\n\"\"\"")[0].strip() if "THEOREM" in __doc__ else "")
    latex = symbolic(rec)
    counts = structure(rec, range(2, 9))
    parity_structure(rec)
    exact_checks(rec, args.quick)
    failure_modes(rec)
    priced_sinks(rec)
    gibbs_training(rec)
    rec.values.update({"latex": latex, **counts,
                       "theorem": "Under gradient flow on lam H(w/s) with a fixed step s, no momentum, no task loss "
                                  "and no noise, no weight's rounded level changes to one of higher HW.",
                       "proof": "On (k, k+1) H is linear: a weight moves toward the lower-HW endpoint (or rests), so "
                                "its rounded level can only change from the higher-HW endpoint to the lower-HW one. "
                                "Generic to the linear interpolation of any integer table; t*, the final state and "
                                "'at most one level' are HW-specific.",
                       "assumptions": ASSUMPTIONS})
    rec.write(out / "derivation.json", out / "density_derivation.md", "HamQ weight density: derivation")
    print("ok" if rec.ok else "FAILED")
    return 0 if rec.ok else 1


if __name__ == "__main__":
    sys.exit(main())
