"""The one home of hamqcore's scalar argument checks and of the integer-level formula: every layer
(numpy API, torch ops, QAT layers, regularizer, CLI) calls these, so a bad argument reads the same
everywhere: a TypeError for the wrong kind, a ValueError naming the argument, its range and the value."""
from __future__ import annotations

import math
import operator
from typing import Iterable, Tuple

import numpy as np

from . import _core

MIN_BITS, MAX_BITS = _core.MIN_BITS, _core.MAX_BITS  # the kernels' range (cpp/include/hamqcore/encoding.hpp)


def as_int(name: str, value) -> int:
    """``value`` as a Python int (numpy integers too), or a TypeError naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def as_str(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r}")
    return value


def check_int(name: str, value, lo: int, hi: int = None) -> int:
    """An integer in [lo, hi] (hi None: no upper bound)."""
    v = as_int(name, value)
    if v < lo or (hi is not None and v > hi):
        rng = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {v}")
    return v


def check_threads(name: str, value):
    """None (the default count), a thread count in 1..max_threads(), or a negative count back from the
    available processors (-1 = all): checked here so a huge Python int gives this error, not an
    overflow in the binding."""
    if value is None:
        return None
    v = as_int(name, value)
    hw, top = _core.hardware_threads(), _core.max_threads()
    if v == 0 or v < -hw or v > top:
        raise ValueError(f"{name} must be a thread count in 1..{top} ({top // hw} x the {hw} available processors), "
                         f"or negative to count back from them (-1 = all), got {v}")
    return v


def check_int32(name: str, value) -> int:
    """An integer the C++ core can take (a 32-bit int); range checks stay in C++."""
    v = as_int(name, value)
    if not -(2 ** 31) <= v < 2 ** 31:
        raise ValueError(f"{name} is out of range, got {v}")
    return v


def check_bits(name: str, value) -> int:
    """A bit width in 2..16, the range every kernel supports."""
    return check_int(name, value, MIN_BITS, MAX_BITS)


def as_float(name: str, value) -> float:
    """A real number (Python or numpy, not a bool) as a float; its range is the caller's to check."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_grid(step, lo, hi) -> Tuple[float, float, float]:
    """A fake-quantization grid ``step * {lo, ..., hi}``: step finite and > 0, lo <= hi, both finite."""
    step, lo, hi = as_float("step", step), as_float("lo", lo), as_float("hi", hi)
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be finite and > 0, got {step}")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"lo and hi must be finite with lo <= hi, got lo={lo}, hi={hi}")
    return step, lo, hi


def as_finite(name: str, value) -> float:
    """A finite real number (Python or numpy, not a bool), e.g. a drift exponent of either sign."""
    v = as_float(name, value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def check_nonneg(name: str, value) -> float:
    """A finite number >= 0 (Python or numpy), e.g. ``lam``."""
    v = as_float(name, value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def level_max(bits: int) -> int:
    """The largest integer level of a symmetric ``bits``-bit weight, 2^(bits-1) - 1."""
    return (1 << (bits - 1)) - 1


def check_bit_cost(bit_cost, bits: int, rows=None) -> np.ndarray:
    """Per-bit prices as float64: shape ``(bits,)`` or, when ``rows`` is given, ``(rows, bits)``;
    finite, >= 0, and every level's cost (a sum of a row's bit costs) at most ``_core.MAX_LEVEL_COST``
    (the C++ binding checks the same, cpp/bindings/common.cpp bit_cost_arg)."""
    try:
        cost = np.asarray(bit_cost, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"bit_cost must be a float array, got {type(bit_cost).__name__}") from None
    shapes = [(bits,)] + ([(rows, bits)] if rows is not None else [])
    if cost.shape not in shapes:
        raise ValueError(f"bit_cost must have shape {' or '.join(map(str, shapes))}, got {cost.shape}")
    if not np.all(np.isfinite(cost)) or np.any(cost < 0):
        raise ValueError(f"bit_cost must be finite and >= 0, got {cost.tolist()}")
    with np.errstate(over="ignore"):
        sums = cost.reshape(-1, bits).sum(axis=1)
    if np.any(sums > _core.MAX_LEVEL_COST):
        raise ValueError(f"bit_cost is too large: a level's cost (the sum of its 1-bits' costs) must stay below "
                         f"{_core.MAX_LEVEL_COST:g}, got bit costs summing to {float(sums.max()):g}")
    return cost
