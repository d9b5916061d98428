"""The numpy-facing API over the compiled kernels.

Every function takes numpy arrays (anything ``np.asarray`` accepts) and returns numpy arrays or
Python scalars. Array contents are validated in C++ (the single source of those messages); this layer
checks the scalar arguments (:mod:`hamqcore._checks`: a float ``bits`` is a TypeError, a huge int a
ValueError naming the argument rather than an overflow in the binding) and documents the contract.

Encodings (how a signed level q in [-(2^(bits-1)-1), 2^(bits-1)-1] becomes crossbar cells):

* ``"differential"``: a positive and a negative array; ON cells = popcount(|q|)
* ``"sign_magnitude"``: popcount(|q|) + (q < 0)
* ``"twos_complement"``: popcount(q mod 2^bits)
* ``"offset"``: popcount(q + 2^(bits-1))
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _core
from ._checks import as_int, as_str as _str, check_bit_cost, check_bits, check_grid, check_int32, check_threads, level_max  # noqa: F401

ENCODINGS = tuple(_core.ENCODINGS)

openmp_enabled = _core.openmp_enabled
hardware_threads = _core.hardware_threads
max_threads = _core.max_threads
get_num_threads = _core.get_num_threads
active_isa = _core.active_isa
available_isas = _core.available_isas


def _threads(n_threads) -> Optional[int]:
    return check_threads("n_threads", n_threads)


def _int(name: str, value) -> int:
    return check_bits(name, value) if name == "bits" else check_int32(name, value)


def _length(length) -> int:
    v = as_int("length", length)
    if not 0 <= v < 2 ** 62:
        raise ValueError(f"length must be in 0..2^62-1, got {v}")
    return v


def set_num_threads(n: int) -> None:
    """Set the thread count used when a kernel gets ``n_threads=None``.

    ``n`` > 0 is a count; negative counts back from the available processors (-1 = all).
    """
    if n is None:
        raise TypeError("n must be an integer thread count, got None")
    _core.set_num_threads(check_threads("n", n))


def hamming_weight(q, bits: int, encoding: str = "differential", n_threads: Optional[int] = None) -> np.ndarray:
    """ON cells of every weight: a uint8 array shaped like ``q``.

    ``q`` holds signed integers (int8/16/32/64) in the symmetric range of ``bits`` (2..16); a value
    outside it raises ValueError naming its index.
    """
    return _core.hamming_weight(np.asarray(q), _int("bits", bits), _str("encoding", encoding), _threads(n_threads))


def total_hamming_weight(q, bits: int, encoding: str = "differential", n_threads: Optional[int] = None) -> int:
    """Sum of ON cells over all weights, exact (Python int)."""
    return _core.total_hamming_weight(np.asarray(q), _int("bits", bits), _str("encoding", encoding), _threads(n_threads))


def hw_histogram(q, bits: int, encoding: str = "differential", n_threads: Optional[int] = None) -> np.ndarray:
    """int64 array of length ``bits + 1``: entry h counts the weights with h ON cells."""
    return _core.hw_histogram(np.asarray(q), _int("bits", bits), _str("encoding", encoding), _threads(n_threads))


def pack_bitplanes(
    q, bits: int, encoding: str = "differential", cell_bits: int = 1, n_threads: Optional[int] = None
) -> np.ndarray:
    """Pack weights into uint64 bit-planes along the last axis (one crossbar column).

    Each weight's code is split into ``D = ceil(m / cell_bits)`` digits (``m = bits - 1`` for the
    differential encoding, ``bits`` otherwise), digit 0 least significant; plane ``d`` holds digit
    ``d`` of every weight, ``64 // cell_bits`` weights per word, weight ``j`` of a vector at word
    ``j // (64 // cell_bits)``, bit offset ``(j % (64 // cell_bits)) * cell_bits``; padding is zero.

    Shape: ``(D, *q.shape[:-1], W)`` with ``W = ceil(q.shape[-1] * cell_bits / 64)``; for the
    differential encoding ``(2, D, ..., W)``, index 0 the positive array (max(q, 0)) and 1 the
    negative array (max(-q, 0)). A 0-d ``q`` is packed as a length-1 vector.
    """
    return _core.pack_bitplanes(
        np.asarray(q), _int("bits", bits), _str("encoding", encoding), _int("cell_bits", cell_bits), _threads(n_threads)
    )


def unpack_bitplanes(
    planes, length: int, bits: int, encoding: str = "differential", cell_bits: int = 1,
    n_threads: Optional[int] = None,
) -> np.ndarray:
    """Exact inverse of :func:`pack_bitplanes`: weights of shape ``(..., length)``.

    The dtype is int8 for ``bits <= 8`` and int16 otherwise. Planes that hold no valid code
    (both differential arrays set, a digit beyond the stored bits, an out-of-range level) raise
    ValueError naming the weight.
    """
    return _core.unpack_bitplanes(
        np.asarray(planes), _length(length), _int("bits", bits), _str("encoding", encoding),
        _int("cell_bits", cell_bits), _threads(n_threads),
    )


def relaxed_hw(
    x, bits: int, encoding: str = "differential", relaxation: str = "linear", n_threads: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Relaxed Hamming weight of real weights ``x`` (in integer units, ``w / scale``).

    Returns ``(values, derivatives)`` in x's dtype (float32 or float64). ``"linear"``: the
    piecewise-linear interpolation of HW between ``floor(x)`` and ``floor(x) + 1``; derivative
    ``HW(k+1) - HW(k)`` on ``(k, k+1)``, the mean of both one-sided slopes at an integer. Beyond the
    representable range x is clamped (value at the bound, derivative 0). ``"cosine"``: the smooth
    blend ``HW(k) + (HW(k+1) - HW(k)) (1 - cos(pi (x - k))) / 2``, evaluated from the nearer level
    (within an ulp of its exact value in float32, a few in float64). NaN/inf raise ValueError.
    """
    return _core.relaxed_hw(
        np.asarray(x), _int("bits", bits), _str("encoding", encoding), _str("relaxation", relaxation), _threads(n_threads)
    )


def relaxed_hw_penalty(
    x, bits: int, encoding: str = "differential", reduction: str = "sum", relaxation: str = "linear",
    n_threads: Optional[int] = None, out: Optional[np.ndarray] = None,
) -> Tuple[float, np.ndarray]:
    """Fused penalty and gradient: ``(sum or mean of relaxed HW, d penalty / d x)``.

    One pass that never stores the elementwise values. The value is accumulated in float64 in a
    fixed order, so it is bitwise identical for every thread count. ``out``: the gradient is written
    there and returned (x's shape and dtype, C-contiguous, not overlapping x) instead of a new array.
    """
    return _core.relaxed_hw_penalty(
        np.asarray(x), _int("bits", bits), _str("encoding", encoding), _str("reduction", reduction),
        _str("relaxation", relaxation), _threads(n_threads), out,
    )


def scaled_hw_penalty(
    w, scale, bits: int, encoding: str = "differential", reduction: str = "sum", relaxation: str = "linear",
    n_threads: Optional[int] = None, weight: float = 1.0, bit_cost=None, out: Optional[np.ndarray] = None,
) -> Tuple[float, np.ndarray, np.ndarray]:
    """Fused penalty of ``x = w / scale`` with one scale per row (``w.shape[0]``) or one in all.

    Returns ``(value, d value / d w, d value / d scale)``; the last has scale's shape. No scaled
    copy of ``w`` is made: ``d/dw = H'(x) / s`` and ``d/ds = -sum_row H'(x) w / s^2``.
    ``scale=None`` uses each row's symmetric max step ``max|w| / (2^(bits-1) - 1)`` (held constant:
    no scale gradient) and returns that step, shape ``(rows,)``, as the third result.
    ``weight`` multiplies the value and both gradients in the same pass.
    ``bit_cost`` (shape ``(bits,)``, or ``(rows, bits)`` for one per row; finite, >= 0): the price
    of a 1 at each bit of a weight's code, LSB first (:func:`level_cost` gives the resulting cost of
    every level); the penalty then relaxes that level cost instead of the HW (all ones: the HW).
    ``out``: where d value / d w is written, as for :func:`relaxed_hw_penalty`.
    """
    return _core.scaled_hw_penalty(
        np.asarray(w), None if scale is None else np.asarray(scale), _int("bits", bits), _str("encoding", encoding),
        _str("reduction", reduction), _str("relaxation", relaxation), _threads(n_threads), float(weight),
        None if bit_cost is None else np.asarray(bit_cost), out,
    )


def level_cost(bit_cost, bits: int, encoding: str = "differential") -> np.ndarray:
    """The cost of every integer level -hi..hi (index k + hi) under per-bit costs ``bit_cost``
    (shape ``(bits,)``, LSB first): sum over the 1-bits of the level's code of their cost; with
    all costs 1 this is :func:`hamming_weight` of the levels."""
    bits = _int("bits", bits)
    cost = check_bit_cost(bit_cost, bits)
    codes = level_codes(bits, encoding)
    return ((codes[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.float64) @ cost


def level_codes(bits: int, encoding: str = "differential") -> np.ndarray:
    """The stored code of every integer level -hi..hi (index k + hi) in ``encoding``, as uint32:
    its popcount is the level's HW (for the differential mapping, the code of whichever array holds
    the weight: |k|)."""
    return _core.level_codes(_int("bits", bits), _str("encoding", encoding))


def quantize_rows(w, bits: int, step=None, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Weights ``w`` (rows x k, float32 or float64, finite) onto the symmetric integer grid of ``bits``
    bits, row by row, in one pass: ``(q, step)`` with ``q = clamp(round(w / step), -qmax, qmax)``
    as int16 (qmax = 2^(bits-1) - 1; round half to even, each operation in w's precision: bit for bit
    ``torch.round(w / step).clamp(-qmax, qmax)``) and the step of each row, shape ``(rows,)``.
    ``step``: each row's step (finite, > 0; cast to w's precision), or None for the max step
    ``max|w_row| / qmax`` (1 for an all-zero row: :func:`hamqcore.ops.max_step`)."""
    return _core.quantize_rows(np.asarray(w), _int("bits", bits), None if step is None else np.asarray(step),
                               _threads(n_threads))


def fake_quantize(x, step: float, lo: float, hi: float, out: Optional[np.ndarray] = None,
                  n_threads: Optional[int] = None) -> np.ndarray:
    """Fake quantization of ``x`` (float32 or float64, any shape) onto the grid ``step * {lo, ..., hi}``,
    in one pass: ``clamp(round(x / step), lo, hi) * step`` in x's dtype (round half to even, each
    operation in x's precision: bit for bit ``torch.clamp(torch.round(x / step), lo, hi) * step``; NaN
    stays NaN). ``step``: finite, > 0; ``lo <= hi``, finite (cast to x's precision). ``out``: written
    and returned instead of a new array (x's shape and dtype, C-contiguous; x itself is allowed)."""
    return _core.fake_quantize(np.asarray(x), *check_grid(step, lo, hi), out, _threads(n_threads))


def fake_quantize_backward(x, grad, step: float, lo: float, hi: float, out: Optional[np.ndarray] = None,
                           n_threads: Optional[int] = None) -> np.ndarray:
    """The straight-through gradient of :func:`fake_quantize` with respect to ``x``, as autograd computes
    it through the forward's operations: ``(grad * step) / step`` where ``lo <= round(x / step) <= hi``,
    else 0. ``grad``: x's shape and dtype; ``out`` as for :func:`fake_quantize` (x or grad allowed)."""
    return _core.fake_quantize_backward(np.asarray(x), np.asarray(grad), *check_grid(step, lo, hi), out,
                                        _threads(n_threads))


def abs_max(x, n_threads: Optional[int] = None) -> float:
    """``max |x|`` of a float32 or float64 array in one read pass (NaN when an element is NaN, 0 when
    ``x`` is empty); the value is exact, so it is ``np.abs(x).max()``'s."""
    return _core.abs_max(np.asarray(x), _threads(n_threads))
