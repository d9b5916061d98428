"""Torch custom ops with autograd: ``hamqcore::relaxed_hw_penalty`` (and its scaled form) and
``hamqcore::fake_quantize``.

The penalty op returns the penalty (a 0-d tensor) and, as a second non-differentiable output, its
gradient with respect to x, computed in the same fused pass. On CPU the C++ kernel runs directly
on the tensor's memory (float32/float64, no copy for contiguous tensors); on every other device
(CUDA, MPS, ...) a pure-torch implementation of the same formula runs. Backward multiplies the saved
gradient by the incoming one; nothing else is saved.

``fake_quantize`` (quantization-aware training's activations) is ``clamp(round(x / step), lo, hi) *
step`` with the straight-through gradient, in one C++ pass each way on contiguous float32/float64 CPU
tensors and in torch elsewhere: the same bits either way (the C++ kernels do torch's operations in its
order), so choosing the path never changes a trained model.
"""
from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np
import torch

from . import kernels
from ._checks import check_bit_cost, check_bits, check_choice, check_grid, level_max

_REDUCTIONS = ("sum", "mean")


@functools.lru_cache(maxsize=None)
def _hw_table_np(bits: int, encoding: str) -> np.ndarray:
    hi = level_max(bits)
    return kernels.hamming_weight(np.arange(-hi, hi + 1, dtype=np.int32), bits, encoding)


def hw_table(bits: int, encoding: str, device, dtype) -> torch.Tensor:
    """HW of every level -hi..hi as a tensor (index k + hi)."""
    return torch.as_tensor(_hw_table_np(bits, encoding), device=device).to(dtype)


def cost_table(bit_cost: torch.Tensor, bits: int, encoding: str) -> torch.Tensor:
    """Level costs -hi..hi (last axis, index k + hi) of per-bit costs ``bit_cost`` (..., bits), LSB
    first: the sum of the costs of each level's 1-bits (the C++ kernel builds the same table)."""
    codes = torch.as_tensor(kernels.level_codes(bits, encoding).astype(np.int64), device=bit_cost.device)
    planes = (codes[:, None] >> torch.arange(bits, device=bit_cost.device)) & 1
    return (bit_cost.to(torch.float64) @ planes.T.to(torch.float64)).to(bit_cost.dtype)


def torch_relaxed_hw(x: torch.Tensor, bits: int, encoding: str = "differential",
                     table: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Linear relaxed HW and its derivative in plain torch (any device); the same formula as the
    C++ kernel: interpolation between floor(x) and floor(x)+1, mean slope at integers, clamped
    outside the range with half the inner slope exactly at a bound. Non-finite x raise ValueError,
    as in the C++ kernel. ``table``: level costs to relax instead of the HW (:func:`cost_table`),
    shape (levels,) or (rows of x, levels)."""
    _check_finite("x", x)
    hi = level_max(bits)
    if table is None:
        table = hw_table(bits, encoding, x.device, x.dtype)
    table = table.to(x.dtype)
    xc = x.clamp(-hi, hi)
    k = torch.minimum(torch.floor(xc), torch.tensor(hi - 1, dtype=x.dtype, device=x.device))
    f = xc - k
    idx = k.to(torch.long) + hi
    if table.dim() == 2:  # one table per row: look up in the row's own table
        offset = (torch.arange(x.shape[0], device=x.device) * table.shape[1]).reshape(-1, *([1] * (x.dim() - 1)))
        table, idx = table.reshape(-1), idx + offset
        low = offset
    else:
        low = torch.zeros((), dtype=torch.long, device=x.device)
    t0, t1 = table[idx], table[idx + 1]
    tm = table[torch.maximum(idx - 1, low)]
    slope = t1 - t0
    left = torch.where(idx > low, t0 - tm, torch.zeros_like(t0))
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
    grad = torch.empty(arr.shape, dtype=work.dtype)  # torch's allocation: no page faults on every call
    value, _ = kernels.relaxed_hw_penalty(arr, bits, encoding, reduction, out=grad.numpy())
    return (torch.tensor(value, dtype=x.dtype), grad.to(x.dtype))


@_penalty_op.register_fake
def _penalty_fake(x, bits, encoding, reduction):
    return x.new_empty(()), torch.empty_like(x)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    # Only the value is differentiated: without this, autograd fills a zero gradient of x's size for the
    # unused derivative output on every backward (a full write of the weights' size per call).
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_value, grad_grad):
    (deriv,) = ctx.saved_tensors
    if grad_value is None:      # the value is not in the differentiated graph
        return None, None, None, None
    return grad_value * deriv, None, None, None


_penalty_op.register_autograd(_backward, setup_context=_setup_context)


def _row_scale(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale as a tensor broadcasting over w's rows: (rows, 1, ..., 1) or a scalar."""
    if scale.numel() == 1:
        return scale.reshape(())
    return scale.reshape(w.shape[0], *([1] * (w.dim() - 1)))


def max_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row symmetric max step max|w| / (2^(bits-1)-1) (1 for an all-zero row), shape (rows,):
    the standard fixed-point grid (1 for every row of an empty weight). The fused C++ kernel computes
    the same when scale is None."""
    n = w.shape[0] if w.dim() else 1
    if w.numel() == 0:                 # no row to reduce (0 outputs or 0 inputs): nothing to scale
        return torch.ones(n, dtype=w.dtype, device=w.device)
    rows = w.reshape(n, -1)
    amax = rows.abs().amax(dim=1)   # 5-8x faster than vector_norm(ord=inf), the same values
    return torch.where(amax > 0, amax / level_max(bits), torch.ones_like(amax))


# Tensors whose values can be read: plain ones and Parameters (a model's weights; a plain subclass
# without a __torch_function__ of its own). torch's subclasses that trace or fake (FakeTensor,
# FunctionalTensor, ...) are not: checks skip them, and the eager paths leave them to the ops.
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def _check_finite(name: str, t: torch.Tensor) -> None:
    # the pure-torch paths check like the C++ kernels do (NaN/inf raise, naming the first index);
    # skipped while tracing, where values are unknown
    if torch.compiler.is_compiling() or type(t) not in _PLAIN:
        return
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"{name}{list(idx)} = {float(t.detach()[idx])} is not finite")


@torch.library.custom_op("hamqcore::scaled_hw_penalty", mutates_args=())
def _scaled_op(w: torch.Tensor, scale: Optional[torch.Tensor], bits: int, encoding: str,
               reduction: str, weight: float, bit_cost: Optional[torch.Tensor]
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Default (any device): pure torch, the same formula as the fused C++ kernel. With scale=None
    # the third output is the max step used (no scale gradient), else d value / d scale.
    work = w.double() if w.dtype == torch.float64 else w.float()
    from_max = scale is None
    _check_finite("w", work)
    if from_max:
        scale = max_step(work.detach(), bits)
    else:
        _check_finite("scale", scale)
        if not (torch.compiler.is_compiling() or type(scale) not in _PLAIN) and bool((scale <= 0).any()):
            raise ValueError(f"scale must be > 0, got {scale.detach().min().item()}")
    s = _row_scale(w, scale.to(work.dtype))
    x = work / s
    table = None if bit_cost is None else cost_table(bit_cost.to(work.dtype), bits, encoding)
    values, deriv = torch_relaxed_hw(x, bits, encoding, table)
    value = values.sum(dtype=torch.float64)
    grad_w = deriv / s
    gs = -(deriv * x)
    grad_s = (gs.sum() if scale.numel() == 1 else gs.reshape(w.shape[0], -1).sum(1)) / s.reshape(-1)
    if reduction == "mean":
        n = w.numel()
        value = value / n if n else value * float("nan")
        if n:
            grad_w, grad_s = grad_w / n, grad_s / n
    value, grad_w, grad_s = value * weight, grad_w * weight, grad_s * weight
    if from_max:
        return value.to(w.dtype), grad_w.to(w.dtype), scale.to(w.dtype)
    return value.to(w.dtype), grad_w.to(w.dtype), grad_s.reshape(scale.shape).to(scale.dtype)


@_scaled_op.register_kernel("cpu")
def _scaled_cpu(w, scale, bits, encoding, reduction, weight, bit_cost):
    work = w if w.dtype in (torch.float32, torch.float64) else w.float()
    arr = work.detach().contiguous().numpy()
    sc = None if scale is None else scale.detach().to(work.dtype).contiguous().numpy()
    bc = None if bit_cost is None else bit_cost.detach().double().contiguous().numpy()
    gw = torch.empty(arr.shape, dtype=work.dtype)  # torch's allocation: no page faults on every call
    value, _, third = kernels.scaled_hw_penalty(arr, sc, bits, encoding, reduction, weight=weight, bit_cost=bc,
                                                out=gw.numpy())
    return (torch.tensor(value, dtype=w.dtype), gw.to(w.dtype),
            torch.from_numpy(third).to(w.dtype if scale is None else scale.dtype))


@_scaled_op.register_fake
def _scaled_fake(w, scale, bits, encoding, reduction, weight, bit_cost):
    third = w.new_empty((w.shape[0] if w.dim() else 1,)) if scale is None else torch.empty_like(scale)
    return w.new_empty(()), torch.empty_like(w), third


def _scaled_setup(ctx, inputs, output):
    ctx.scale_given = inputs[1] is not None
    ctx.save_for_backward(output[1], output[2] if ctx.scale_given else None)
    ctx.set_materialize_grads(False)    # as _setup_context: no zero gradient for the unused outputs


def _wrapped(t: torch.Tensor) -> bool:
    """Whether t is a torch.func wrapper (grad, jacrev): no storage of its own, so no numpy view."""
    return torch._C._functorch.is_functorch_wrapped_tensor(t)


def _is_one(t: torch.Tensor) -> bool:
    # checked only for plain eager CPU tensors (reading the scalar costs no device sync); traced,
    # fake and functional tensors (compile, AOT dispatch) always take the general path
    if torch.compiler.is_compiling() or type(t) not in _PLAIN or _wrapped(t):
        return False
    return t.device.type == "cpu" and t.numel() == 1 and float(t) == 1.0


def _scaled_backward(ctx, grad_value, grad_gw, grad_third):
    gw, gs = ctx.saved_tensors
    if grad_value is None:      # the value is not in the differentiated graph
        return None, None, None, None, None, None, None
    # The op already applied its weight; in `loss = task + reg()` the incoming gradient is exactly 1,
    # so the saved gradient is handed on without another pass over all the weights.
    if _is_one(grad_value):
        return gw, (gs if ctx.scale_given else None), None, None, None, None, None
    return grad_value * gw, (grad_value * gs if ctx.scale_given else None), None, None, None, None, None


_scaled_op.register_autograd(_scaled_backward, setup_context=_scaled_setup)


class _EagerPenalty(torch.autograd.Function):
    """The penalty op's CPU kernel, setup and backward without the custom-op dispatcher, for plain eager
    CPU tensors: the same bits (``_penalty_cpu``, ``_setup_context``, ``_backward``); traced code takes
    the op. In the ``setup_context`` form, so ``torch.func.grad`` / ``jacrev`` run it too."""

    @staticmethod
    def forward(x, bits, encoding, reduction):
        return _penalty_cpu(x, bits, encoding, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_context(ctx, inputs, output)
        ctx.mark_non_differentiable(output[1])

    backward = staticmethod(_backward)


class _EagerScaledPenalty(torch.autograd.Function):
    """The scaled penalty op's CPU kernel, setup and backward without the custom-op dispatcher, for plain
    eager CPU tensors (:func:`_eager`): the same bits (``_scaled_cpu``, ``_scaled_setup``,
    ``_scaled_backward``) at a fraction of the dispatcher's Python cost per call (about 0.07 ms of
    0.14 ms for a small layer's forward and backward: the regularizer runs one call per layer).
    Traced code (torch.compile, export) takes the op. In the ``setup_context`` form, so
    ``torch.func.grad`` / ``jacrev`` run it too."""

    @staticmethod
    def forward(w, scale, bits, encoding, reduction, weight, bit_cost):
        return _scaled_cpu(w, scale, bits, encoding, reduction, weight, bit_cost)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _scaled_setup(ctx, inputs, output)
        ctx.mark_non_differentiable(output[1], output[2])

    backward = staticmethod(_scaled_backward)


def _apply(fn, *args):
    """``fn.apply(*args)`` (a ``setup_context``-form autograd.Function, every argument given) without the
    signature binding torch's ``Function.apply`` does on every call for that form (``inspect.signature``:
    about 20 us, as long as the fused forward of a 0.5 M activation) where no torch.func transform is
    active: then it calls the C++ apply, which runs forward and setup_context alike. Under a transform
    (grad, vmap, jacrev) it is ``fn.apply``, whose functorch path needs the binding."""
    if _transforms_active is None or _transforms_active():
        return fn.apply(*args)
    return super(torch.autograd.Function, fn).apply(*_unwrap_dead(args))


_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
_unwrap_dead = torch._functorch.utils.unwrap_dead_wrappers


def _eager(*tensors) -> bool:
    """Whether every given tensor (None skipped) is a plain eager CPU tensor (or Parameter) outside
    tracing: the case the autograd.Function paths take instead of the custom op."""
    if torch.compiler.is_compiling():
        return False
    return all(t is None or (type(t) in _PLAIN and t.device.type == "cpu") for t in tensors)



def scaled_hw_penalty(w: torch.Tensor, scale=None, bits: int = 8, encoding: str = "differential",
                      reduction: str = "sum", weight: float = 1.0, bit_cost=None) -> torch.Tensor:
    """``weight`` x the relaxed-HW penalty of ``w / scale`` (scale: a number, or one per output
    channel in any shape that broadcasts over w's rows), fused: differentiable w.r.t. w and scale.
    ``scale=None``: each output channel's symmetric max step, held constant. ``bit_cost``: per-bit
    prices, shape (bits,) or (rows of w, bits), LSB first (:func:`hamqcore.kernels.level_cost`);
    the penalty then relaxes each level's cost instead of its HW (held constant: no gradient)."""
    check_penalty_args(bits, encoding, reduction)
    weight = float(weight)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"w must be a floating-point torch.Tensor, got {getattr(w, 'dtype', type(w).__name__)}")
    if bit_cost is not None:
        bit_cost = _check_bit_cost(bit_cost, bits, w)
    if scale is not None:
        if not isinstance(scale, torch.Tensor):
            scale = torch.tensor(float(scale), dtype=w.dtype, device=w.device)
        rows = w.shape[0] if w.dim() else 1
        if scale.numel() not in (1, rows):
            raise ValueError(f"scale must hold 1 value or one per row of w ({rows}), got shape {tuple(scale.shape)}")
    if _eager(w, scale, bit_cost):
        return _apply(_EagerScaledPenalty, w, scale, bits, encoding, reduction, weight, bit_cost)[0]
    return _scaled_op(w, scale, bits, encoding, reduction, weight, bit_cost)[0]


def _check_bit_cost(bit_cost, bits: int, w: torch.Tensor) -> torch.Tensor:
    if isinstance(bit_cost, torch.Tensor):   # constants (no gradient); torch.func's wrapped ones by value
        t = bit_cost.detach()
        bit_cost = np.asarray(t.tolist(), np.float64) if _wrapped(t) else t.cpu().numpy()
    cost = check_bit_cost(bit_cost, bits, w.shape[0] if w.dim() else 1)
    return torch.from_numpy(cost).to(w.device)


def check_penalty_args(bits, encoding, reduction):
    """The bit width, encoding and reduction of a penalty call (a ValueError naming the bad one)."""
    check_bits("bits", bits)
    check_choice("encoding", encoding, kernels.ENCODINGS)
    check_choice("reduction", reduction, _REDUCTIONS)


def relaxed_hw_penalty(x: torch.Tensor, bits: int = 8, encoding: str = "differential", reduction: str = "sum") -> torch.Tensor:
    """Differentiable relaxed-HW penalty of ``x`` (integer units); a 0-d tensor."""
    check_penalty_args(bits, encoding, reduction)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    if _eager(x):
        return _apply(_EagerPenalty, x, bits, encoding, reduction)[0]
    return _penalty_op(x, bits, encoding, reduction)[0]


def _fused(x: torch.Tensor) -> bool:
    """Whether the C++ kernels take x: a contiguous float32/float64 CPU tensor with its own storage (else
    torch's formula, which also keeps another memory format's strides and runs on torch.func's wrapped
    tensors)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()
            and not _wrapped(x))


def _fq_forward(x: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    if _fused(x):   # into torch's own allocation
        y = torch.empty_like(x, memory_format=torch.contiguous_format)
        kernels.fake_quantize(x.detach().numpy(), step, lo, hi, out=y.numpy())
        return y
    s = torch.tensor(step, dtype=x.dtype, device=x.device)
    return torch.clamp(torch.round(x / s), lo, hi) * s


def _fq_backward(x: torch.Tensor, grad: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    if (_fused(x) and grad.dtype == x.dtype and grad.device.type == "cpu"
            and not _wrapped(grad)):
        gx = torch.empty_like(x, memory_format=torch.contiguous_format)
        kernels.fake_quantize_backward(x.detach().numpy(), grad.contiguous().numpy(), step, lo, hi, out=gx.numpy())
        return gx
    s = torch.tensor(step, dtype=x.dtype, device=x.device)
    v = torch.round(x / s)
    return torch.where((v >= lo) & (v <= hi), (grad * s) / s, torch.zeros((), dtype=grad.dtype, device=grad.device))


@torch.library.custom_op("hamqcore::fake_quantize", mutates_args=())
def _fake_quantize_op(x: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    return _fq_forward(x, step, lo, hi)


@_fake_quantize_op.register_fake
def _fake_quantize_fake(x, step, lo, hi):
    return torch.empty_like(x)


@torch.library.custom_op("hamqcore::fake_quantize_backward", mutates_args=())
def _fake_quantize_backward_op(x: torch.Tensor, grad: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    return _fq_backward(x, grad, step, lo, hi)


@_fake_quantize_backward_op.register_fake
def _fake_quantize_backward_fake(x, grad, step, lo, hi):
    return torch.empty_like(grad)


def _fake_quantize_setup(ctx, inputs, output):
    x, ctx.step, ctx.lo, ctx.hi = inputs
    ctx.save_for_backward(x)


def _fake_quantize_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return _fake_quantize_backward_op(x, grad, ctx.step, ctx.lo, ctx.hi), None, None, None


_fake_quantize_op.register_autograd(_fake_quantize_backward, setup_context=_fake_quantize_setup)


class _EagerFakeQuantize(torch.autograd.Function):
    """The op's two kernels without the custom-op dispatcher, for plain eager CPU tensors: the same
    bits forward and backward at a quarter less time per call on a 0.5 M activation (the dispatcher's
    Python layers cost about as much as the C++ passes). Traced code (torch.compile, export) takes the
    op, which they see through its fake kernel. In the ``setup_context`` form, so ``torch.func.grad``
    / ``jacrev`` run it too."""

    @staticmethod
    def forward(x, step, lo, hi):
        return _fq_forward(x, step, lo, hi)

    setup_context = staticmethod(_fake_quantize_setup)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return _fq_backward(x, grad, ctx.step, ctx.lo, ctx.hi), None, None, None


def fake_quantize(x: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
    """``clamp(round(x / step), lo, hi) * step`` (round half to even) with the straight-through
    gradient: bit for bit ``torch.clamp(x_ste, lo, hi) * s`` with ``x_ste = v + (round(v) - v).detach()``,
    ``v = x / s`` and ``s`` the step as a tensor of x's dtype, forward and backward. ``step``: finite,
    > 0, a value of x's dtype (as ``float(s)`` of such a tensor); ``lo <= hi``, finite."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}"
                        + (f" of {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    grid = check_grid(step, lo, hi)
    if _eager(x):   # the op's own bodies (fused or torch's formula, :func:`_fused`), no dispatcher
        return _apply(_EagerFakeQuantize, x, *grid)
    return _fake_quantize_op(x, *grid)


def abs_max(x: torch.Tensor) -> torch.Tensor:
    """``x.abs().max()`` (NaN when an element is NaN) as a 0-d tensor of x's dtype, in one C++ read pass
    for contiguous float32/float64 CPU tensors (the max is exact: the same value)."""
    if _fused(x) and x.numel():
        return torch.tensor(kernels.abs_max(x.detach().numpy()), dtype=x.dtype)
    return x.detach().abs().max()
