"""The one home of hamqcore's scalar argument checks and of the integer-level formula: every layer
(numpy API, torch ops, QAT layers, regularizer, CLI) calls these, so a bad argument reads the same
everywhere: a TypeError for the wrong kind, a ValueError naming the argument, its range and the value."""
from __future__ import annotations

import math
import operator
from typing import Iterable

import numpy as np

MIN_BITS, MAX_BITS = 2, 16  # the kernels' range (cpp/include/hamqcore/encoding.hpp kMinBits/kMaxBits)


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


def check_bits(name: str, value) -> int:
    """A bit width in 2..16, the range every kernel supports."""
    return check_int(name, value, MIN_BITS, MAX_BITS)


def check_nonneg(name: str, value) -> float:
    """A finite number >= 0 (Python or numpy), e.g. ``lam``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    v = float(value)
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
