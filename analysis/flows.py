"""Exact computations the analysis checks its closed forms against (imported by the scripts beside it
and by tests/test_analysis.py; not part of the hamqcore package).

* :func:`exact_flow`: the drift-alone gradient flow dx/dt = -eta lam H'(x) of the linear interpolation H
  of ANY table, event by event (no time step): on (k, k+1) a weight moves at the constant velocity
  -eta lam (T[k+1] - T[k]); at a node it goes on when the next interval continues its direction and
  stops otherwise (a sink, a flat interval or the end of the range: Filippov's rest point).
* :func:`hw_table`: the HW of every level of a width and encoding (from hamqcore's C++ kernel).
* :func:`quantile_grid`: a density's mass as N equal atoms at its quantiles (deterministic quadrature).
* :func:`first_passage_ode`: the mean first-passage time of 1-D diffusion from the backward Kolmogorov
  equation, solved by finite differences (independent of the double-integral formula).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import hamqcore


def hw_table(bits: int, encoding: str = "differential") -> np.ndarray:
    """HW of the levels -hi..hi (index k + hi)."""
    hi = (1 << (bits - 1)) - 1
    return hamqcore.hamming_weight(np.arange(-hi, hi + 1, dtype=np.int32), bits, encoding).astype(np.int64)


def exact_flow(table: Sequence[float], x0: np.ndarray, eta_lam: float, t: float) -> np.ndarray:
    """Positions at time ``t`` of weights starting at ``x0`` (in table index units, 0..len-1) under the
    drift alone on the linear interpolation of ``table``. Exact: every weight is followed from event
    to event (node arrivals); none is ever stepped in time."""
    tab = np.asarray(table, dtype=np.float64)
    n = len(tab)
    slope = np.diff(tab)                                  # slope of interval k = (k, k+1)
    x = np.array(x0, dtype=np.float64).copy()
    left = np.full(x.shape, float(t))
    for _ in range(2 * n + 2):                            # a weight passes each node at most once
        k = np.clip(np.floor(x).astype(np.int64), 0, n - 2)
        on_node = x == np.floor(x)
        # direction of motion: inside an interval, -sign(slope); on a node, where the intervals point
        s_int = -np.sign(slope[k])
        node = np.clip(np.rint(x).astype(np.int64), 0, n - 1)
        go_right = (node < n - 1) & (-np.sign(slope[np.clip(node, 0, n - 2)]) > 0)
        go_left = (node > 0) & (-np.sign(slope[np.clip(node - 1, 0, n - 2)]) < 0)
        direction = np.where(on_node, np.where(go_right & ~go_left, 1.0, np.where(go_left & ~go_right, -1.0, 0.0)),
                             s_int)
        # the interval the weight moves through next and its speed
        seg = np.where(on_node, np.where(direction > 0, node, node - 1), k)
        seg = np.clip(seg, 0, n - 2)
        speed = eta_lam * np.abs(slope[seg])
        moving = (direction != 0) & (speed > 0) & (left > 0)
        if not moving.any():
            break
        target = np.where(direction > 0, seg + 1.0, seg.astype(np.float64))
        dist = np.abs(target - x)
        need = np.where(moving, dist / np.where(speed > 0, speed, 1.0), np.inf)
        reach = moving & (need <= left)
        x = np.where(reach, target, np.where(moving, x + direction * speed * left, x))
        left = np.where(reach, left - need, np.where(moving, 0.0, left))
    return x


def quantile_grid(ppf: Callable[[np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """n equal-mass atoms at the midpoint quantiles of a density (its inverse CDF ``ppf``)."""
    return ppf((np.arange(n) + 0.5) / n)


def first_passage_ode(potential: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, start: float,
                      temp: float = 1.0, cells: int = 20000) -> float:
    """Mean first-passage time to ``hi`` from ``start`` of dx = -U'(x) dt + sqrt(2 T) dW, reflecting at
    ``lo``: the backward Kolmogorov equation T tau'' - U' tau' = -1, tau'(lo) = 0, tau(hi) = 0, solved by
    central finite differences as a tridiagonal system (not the closed-form double integral)."""
    from scipy.linalg import solve_banded

    y = np.linspace(lo, hi, cells + 1)
    h = y[1] - y[0]
    u = potential(y)
    du = np.gradient(u, h)                               # U' (the mean slope at a kink)
    n = cells                                            # unknowns tau_0 .. tau_{n-1}; tau_n = 0
    a_lo = temp / h ** 2 + du[:n] / (2 * h)              # coefficient of tau_{i-1}
    a_hi = temp / h ** 2 - du[:n] / (2 * h)              # coefficient of tau_{i+1}
    diag = np.full(n, -2 * temp / h ** 2)
    a_hi[0] += a_lo[0]                                   # reflecting: the ghost node tau_{-1} = tau_1
    ab = np.zeros((3, n))
    ab[0, 1:] = a_hi[:-1]
    ab[1] = diag
    ab[2, :-1] = a_lo[1:]
    tau = solve_banded((1, 1), ab, -np.ones(n))          # tau_n = 0 drops the last a_hi term
    return float(np.interp(start, y, np.concatenate([tau, [0.0]])))
