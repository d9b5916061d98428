"""Torch custom op ``hamqcore::relaxed_hw_penalty`` with autograd.

The op returns the penalty (a 0-d tensor) and, as a second non-differentiable output, its
gradient with respect to x, computed in the same fused pass. On CPU the C++ kernel runs directly
on the tensor's memory (float32/float64, no copy for contiguous tensors); on every other device
(CUDA, MPS, ...) a pure-torch implementation of the same formula runs. Backward multiplies the saved
gradient by the incoming one; nothing else is saved.
"""
from __future__ import annotations

import functools
from typing import Tuple

import numpy as np
import torch

from . import _api

_REDUCTIONS = ("sum", "mean")


@functools.lru_cache(maxsize=None)
def _hw_table_np(bits: int, encoding: str) -> np.ndarray:
    hi = (1 << (bits - 1)) - 1
    return _api.hamming_weight(np.arange(-hi, hi + 1, dtype=np.int32), bits, encoding)


def hw_table(bits: int, encoding: str, device, dtype) -> torch.Tensor:
    """HW of every level -hi..hi as a tensor (index k + hi)."""
    return torch.as_tensor(_hw_table_np(bits, encoding), device=device).to(dtype)


def torch_relaxed_hw(x: torch.Tensor, bits: int, encoding: str = "differential") -> Tuple[torch.Tensor, torch.Tensor]:
    """Linear relaxed HW and its derivative in plain torch (any device); the same formula as the
    C++ kernel: interpolation between floor(x) and floor(x)+1, mean slope at integers, clamped
    outside the range with half the inner slope exactly at a bound."""
    hi = (1 << (bits - 1)) - 1
    table = hw_table(bits, encoding, x.device, x.dtype)
    xc = x.clamp(-hi, hi)
    k = torch.minimum(torch.floor(xc), torch.tensor(hi - 1, dtype=x.dtype, device=x.device))
    f = xc - k
    idx = k.to(torch.long) + hi
    t0, t1 = table[idx], table[idx + 1]
    tm = table[(idx - 1).clamp_min(0)]
    slope = t1 - t0
    left = torch.where(idx > 0, t0 - tm, torch.zeros_like(t0))
    deriv = torch.where(f == 0, 0.5 * (left + slope), slope)
    deriv = torch.where(x == hi, 0.5 * slope, deriv)
    deriv = torch.where((x < -hi) | (x > hi), torch.zeros_like(deriv), deriv)
    return t0 + f * slope, deriv


@torch.library.custom_op("hamqcore::relaxed_hw_penalty", mutates_args=())
def _penalty_op(x: torch.Tensor, bits: int, encoding: str, reduction: str) -> Tuple[torch.Tensor, torch.Tensor]:
    # Default (any device): pure torch. The CPU kernel below replaces it on CPU.
    values, deriv = torch_relaxed_hw(x.to(torch.float64) if x.dtype == torch.float64 else x.float(), bits, encoding)
    value = values.sum(dtype=torch.float64)
    if reduction == "mean":
        n = x.numel()
        value = value / n if n else value * float("nan")
        deriv = deriv / n if n else deriv
    return value.to(x.dtype), deriv.to(x.dtype)


@_penalty_op.register_kernel("cpu")
def _penalty_cpu(x: torch.Tensor, bits: int, encoding: str, reduction: str):
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    arr = work.detach().contiguous().numpy()  # a view: no copy for contiguous float32/float64
    value, grad = _api.relaxed_hw_penalty(arr, bits, encoding, reduction)
    return (torch.tensor(value, dtype=x.dtype), torch.from_numpy(grad).to(x.dtype))


@_penalty_op.register_fake
def _penalty_fake(x, bits, encoding, reduction):
    return x.new_empty(()), torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _backward(ctx, grad_value, grad_grad):
    (deriv,) = ctx.saved_tensors
    return grad_value * deriv, None, None, None


_penalty_op.register_autograd(_backward, setup_context=_setup_context)


def _check(bits, encoding, reduction):
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an integer, got {bits!r}")
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 2..16, got {bits}")
    if encoding not in _api.ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(map(repr, _api.ENCODINGS))}, got {encoding!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of 'sum', 'mean', got {reduction!r}")


def relaxed_hw_penalty(x: torch.Tensor, bits: int = 8, encoding: str = "differential", reduction: str = "sum") -> torch.Tensor:
    """Differentiable relaxed-HW penalty of ``x`` (integer units); a 0-d tensor."""
    _check(bits, encoding, reduction)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    return _penalty_op(x, bits, encoding, reduction)[0]
