"""Kernel benchmarks: each case times hamqcore and a reference side by side, in one process, with
interleaved repeats (best of N), and reports the ratio. The scripts in benchmarks/ and
``hamq bench`` print these tables; targets are the issue's speed requirements.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from . import _api


@dataclass
class Case:
    name: str
    ours: float      # seconds, best of repeats
    reference: float
    reference_name: str
    target: Optional[float] = None  # required reference/ours ratio (speed-up), if any

    @property
    def ratio(self) -> float:
        return self.reference / self.ours

    @property
    def meets(self) -> Optional[bool]:
        return None if self.target is None else self.ratio >= self.target


def best_of(fns: List[Callable[[], object]], repeats: int = 7) -> List[float]:
    """Best wall time of each function, repeats interleaved so machine noise hits all alike."""
    best = [float("inf")] * len(fns)
    for fn in fns:  # warm up (page faults, thread pools, caches)
        fn()
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def format_table(cases: List[Case]) -> str:
    head = f"{'case':<44} {'hamqcore':>10} {'reference':>10}  {'ratio':>7}  {'target':>7}  reference"
    lines = [head, "-" * len(head)]
    for c in cases:
        target = "" if c.target is None else f">={c.target:g}x"
        mark = "" if c.meets is None else ("  ok" if c.meets else "  MISS")
        lines.append(
            f"{c.name:<44} {c.ours * 1e3:>8.2f}ms {c.reference * 1e3:>8.2f}ms  {c.ratio:>6.2f}x  {target:>7}"
            f"  {c.reference_name}{mark}"
        )
    return "\n".join(lines)


def numpy_relaxed_penalty(x: np.ndarray, bits: int, table: np.ndarray):
    """The linear relaxed-HW penalty and gradient, vectorised numpy (the speed reference).

    ``table[k + hi]`` is HW(k) for k in [-hi, hi].
    """
    hi = (1 << (bits - 1)) - 1
    xc = np.clip(x, -hi, hi)
    k = np.minimum(np.floor(xc), hi - 1)
    f = xc - k
    idx = k.astype(np.int64) + hi
    t0, t1 = table[idx], table[idx + 1]
    tm = table[np.maximum(idx - 1, 0)]
    slope = (t1 - t0).astype(x.dtype)
    left = np.where(idx > 0, t0 - tm, 0).astype(x.dtype)
    deriv = np.where(f == 0, 0.5 * (left + slope), slope)
    deriv = np.where(x == hi, 0.5 * slope, deriv)
    deriv = np.where((x < -hi) | (x > hi), 0, deriv).astype(x.dtype)
    value = float(np.sum(t0 + f * slope, dtype=np.float64))
    return value, deriv


def core_cases(quick: bool = False) -> List[Case]:
    """Foundation targets: total HW at memory bandwidth and >= 20x numpy; penalty >= 4x numpy."""
    rng = np.random.default_rng(0)
    n = (8 if quick else 64) << 20
    q = rng.integers(-127, 128, size=n, dtype=np.int8)
    words = q.view(np.uint64)
    repeats = 3 if quick else 7
    t_ours, t_bw, t_np = best_of(
        [
            lambda: _api.total_hamming_weight(q, 8),
            lambda: words.sum(),
            lambda: np.bitwise_count(np.abs(q)).sum(),
        ],
        repeats,
    )
    mib = n >> 20
    cases = [
        Case(f"total_hamming_weight {mib} Mi int8 (bandwidth)", t_ours, t_bw, "a.view(uint64).sum()", 0.8),
        Case(f"total_hamming_weight {mib} Mi int8", t_ours, t_np, "np.bitwise_count(np.abs(q)).sum()", 20),
    ]
    m = (2 if quick else 16) << 20
    x = (rng.standard_normal(m) * 20).astype(np.float32)
    hi = 127
    table = _api.hamming_weight(np.arange(-hi, hi + 1, dtype=np.int16), 8).astype(np.float32)
    t_ours, t_np = best_of(
        [lambda: _api.relaxed_hw_penalty(x, 8), lambda: numpy_relaxed_penalty(x, 8, table)],
        max(2, repeats // 2),
    )
    cases.append(Case(f"relaxed_hw_penalty {m >> 20} Mi float32", t_ours, t_np, "vectorised numpy", 4))
    return cases
