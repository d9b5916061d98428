"""Quantization-aware layers.

``QConv1d``, ``QConv2d`` and ``QLinear`` quantize their weights per output channel (symmetric,
``w_bits``) and their inputs per tensor (``a_bits``; unsigned when the input is non-negative, as
after a ReLU, else signed two's complement), with straight-through rounding. The integers and
scales they compute in ``forward`` are exactly what :meth:`QuantLayer.weight_integers` and
:meth:`QuantLayer.input_integers` return, which the HamQ regularizer and the energy estimator read.

Weight scale modes: ``"lsq"`` (the default: a learnable step per channel, LSQ: Esser et al., ICLR
2020, with its gradient scaling), ``"fixed"`` (the max step max|w| / (2^(b-1)-1), calibrated once, on
the first forward or by :meth:`WeightQuantizer.calibrate`, then held: standard fixed-grid QAT) and
``"max"`` (that max step recomputed every step, no gradient; with it the integers do not change when
the weights are rescaled, so the HamQ penalty mostly shrinks the step and moves few weights).
Activation modes: ``"running_max"`` (EMA of max |x| while training) and ``"lsq"``. Under
``"running_max"`` the step carries no gradient and, on the CPU, the quantizer runs
:func:`hamqcore.ops.fake_quantize`: one C++ pass forward and one backward (about half of a DS-CNN-S
training step was torch's elementwise passes), the same bits as torch's ``clamp(round_ste(x / s), lo,
hi) * s``, so a model trains to the same weights either way; on other devices it runs torch's formula
(the step stays on the device, with no host synchronisation).

Layers of another quantization library are read as that library's own integers, steps and bit widths
(:func:`library_weight_quant`, :func:`library_input_quant`; Brevitas' ``QuantConv1d/2d`` and
``QuantLinear``; torch layers whose weight torchao's ``quantize_`` replaced by its integer codes
(``Int8Tensor``, ``IntxUnpackedToInt8Tensor``) with the inputs torchao quantizes for them (dynamic
per token or per tensor, static, asymmetric ones as q - zero point); torchao QAT's
``FakeQuantizedLinear``, the codes its fake quantizers round to; recognised by their API without
importing either library; torch.ao's eager-mode quantized ``Linear`` (static and dynamic), ``Conv1d``
and ``Conv2d`` with their fused ReLU, read from their packed qint8 weights and their quint8 inputs,
their outputs requantized as they requantize them), never re-quantized.

Which layers a model has, and what they store, is :mod:`hamqcore.layers` (the model walk).
"""
from __future__ import annotations

import fnmatch
import functools
import math
from typing import Iterable, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_bits, check_choice, level_max
from .kernels import quantize_rows
from .ops import abs_max, fake_quantize, max_step

WEIGHT_MODES = ("max", "fixed", "lsq")
ACT_MODES = ("running_max", "lsq")


def data_parallel() -> bool:
    """Whether this process is one of several data-parallel ranks (torch.distributed initialised)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    return x * g + (x - x * g).detach()  # value x, gradient scaled by g


def grid_integers(w: torch.Tensor, bits: int, step: Optional[torch.Tensor] = None,
                  dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """``round(w / step).clamp(-qmax, qmax)`` as ``dtype`` (round half to even), ``step`` one value per
    output channel (broadcast over w), or None for :func:`weight_scale_max`. Float32/float64 CPU weights
    with a step of their dtype take the fused C++ pass (:func:`hamqcore.kernels.quantize_rows`, the same
    bits, 3.8-5.1x torch's on ResNet-18's weights); anything else the same formula in torch. A NaN or
    infinite weight is a ValueError on either path (its integer would be meaningless)."""
    qmax = level_max(bits)
    rows = w.shape[0] if w.dim() else 1
    fused = step is None or (step.dtype == w.dtype and step.numel() == rows  # a broken step: torch's formula,
                             and bool(torch.isfinite(step).all()) and bool((step > 0).all()))  # the caller names it
    if w.device.type == "cpu" and w.dtype in (torch.float32, torch.float64) and w.numel() > 0 and fused:
        q, _ = quantize_rows(w.reshape(rows, -1).numpy(), bits, None if step is None else step.reshape(-1).numpy())
        return torch.from_numpy(q).reshape(w.shape).to(dtype)
    if w.is_floating_point() and not bool(torch.isfinite(w).all()):
        raise ValueError(f"w holds {int((~torch.isfinite(w)).sum())} non-finite value(s) (NaN or inf)")
    if step is None:
        step = weight_scale_max(w, bits)
    return torch.round(w / step).clamp(-qmax, qmax).to(dtype)


def weight_scale_max(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel scale max|w| / (2^(bits-1)-1), shaped to broadcast over w."""
    return max_step(w.detach(), bits).reshape(-1, *([1] * (w.dim() - 1)))


def activation_range(bits: int, signed: bool) -> Tuple[int, int, int]:
    """(lo, hi, qmax used for the scale) of a bits-bit activation."""
    if signed:
        return -(1 << (bits - 1)), level_max(bits), level_max(bits)
    return 0, (1 << bits) - 1, (1 << bits) - 1


def quantize_activation(x: torch.Tensor, bits: int, signed: Optional[bool] = None):
    """(integers as int64, scale, signed) of a tensor, per-tensor max-scaled."""
    x = x.detach()
    if signed is None:
        signed = bool((x < 0).any())
    lo, hi, qmax = activation_range(bits, signed)
    amax = float(x.abs().max()) if x.numel() else 0.0
    scale = amax / qmax if amax > 0 else 1.0
    return torch.round(x / scale).clamp(lo, hi).to(torch.int64), torch.tensor(scale), signed


class WeightQuantizer(nn.Module):
    def __init__(self, out_channels: int, bits: int = 8, mode: str = "lsq"):
        super().__init__()
        self.bits = check_bits("w_bits", bits)
        self.mode = check_choice("weight_mode", mode, WEIGHT_MODES)
        self.qmax = level_max(bits)
        if mode == "lsq":
            self.step = nn.Parameter(torch.zeros(out_channels))
            self.register_buffer("initialized", torch.tensor(False))
        elif mode == "fixed":
            self.register_buffer("step", torch.zeros(out_channels))
            self.register_buffer("initialized", torch.tensor(False))

    def calibrate(self, w: torch.Tensor) -> None:
        """Set the step ("fixed" or "lsq") to the current max step of ``w``, max|w| / (2^(b-1)-1)."""
        with torch.no_grad():
            self.step.copy_(weight_scale_max(w, self.bits).reshape(-1))
            self.initialized.fill_(True)

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        """Per-output-channel step, shaped to broadcast over w."""
        if self.mode == "max":
            return weight_scale_max(w, self.bits)
        if self.mode == "fixed":
            if not bool(self.initialized):
                self.calibrate(w)
            return self.step.reshape(-1, *([1] * (w.dim() - 1)))
        if not bool(self.initialized):
            with torch.no_grad():  # LSQ init: 2 mean|w| / sqrt(qmax)
                init = 2 * w.abs().reshape(w.shape[0], -1).mean(dim=1) / math.sqrt(self.qmax)
                self.step.copy_(init.clamp_min(1e-8))
                self.initialized.fill_(True)
        g = 1.0 / math.sqrt(w[0].numel() * self.qmax)
        step = _grad_scale(self.step, g).abs().clamp_min(1e-8)
        return step.reshape(-1, *([1] * (w.dim() - 1)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        s = self.scale(w)
        return torch.clamp(round_ste(w / s), -self.qmax, self.qmax) * s

    def integers(self, w: torch.Tensor, dtype: torch.dtype = torch.int64) -> Tuple[torch.Tensor, torch.Tensor]:
        """(integer weights as ``dtype``, per-channel step shaped to broadcast over w), as forward
        rounds them (float32/float64 CPU weights in one C++ pass, the same bits)."""
        s = self.scale(w).detach()
        return grid_integers(w.detach(), self.bits, s, dtype), s


class ActQuantizer(nn.Module):
    def __init__(self, bits: int = 8, mode: str = "running_max", signed: Optional[bool] = None, momentum: float = 0.1):
        super().__init__()
        self.bits = check_bits("a_bits", bits)
        self.mode = check_choice("act_mode", mode, ACT_MODES)
        self.momentum = momentum
        # -1: not yet known (decided from the first batch), 0: unsigned, 1: signed
        self.register_buffer("signed_flag", torch.tensor(-1 if signed is None else int(signed), dtype=torch.int8))
        self.register_buffer("running_max", torch.tensor(0.0))
        self.register_buffer("initialized", torch.tensor(False))
        if mode == "lsq":
            self.step = nn.Parameter(torch.tensor(1.0))

    @property
    def signed(self) -> Optional[bool]:
        v = int(self.signed_flag)
        return None if v < 0 else bool(v)

    def _observe(self, x: torch.Tensor) -> None:
        with torch.no_grad():
            if int(self.signed_flag) < 0:
                self.signed_flag.fill_(int(bool((x < 0).any())))
            amax = abs_max(x).float() if x.numel() else torch.tensor(0.0)
            if self.training and data_parallel():   # data-parallel training: the range of the global batch
                import torch.distributed as dist

                dist.all_reduce(amax, op=dist.ReduceOp.MAX)
            if not bool(self.initialized):
                self.running_max.copy_(amax)
                self.initialized.fill_(True)
                if self.mode == "lsq":
                    _, _, qmax = activation_range(self.bits, bool(int(self.signed_flag)))
                    self.step.copy_((2 * x.detach().abs().mean() / math.sqrt(qmax)).clamp_min(1e-8))
            elif self.training:
                self.running_max.mul_(1 - self.momentum).add_(self.momentum * amax)

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        _, _, qmax = activation_range(self.bits, bool(int(self.signed_flag)))
        if self.mode == "lsq":
            g = 1.0 / math.sqrt(max(1, x[0].numel()) * qmax)
            return _grad_scale(self.step, g).abs().clamp_min(1e-8)
        rm = self.running_max
        return torch.where(rm > 0, rm / qmax, torch.ones_like(rm)).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not bool(self.initialized):
            self._observe(x)
        lo, hi, _ = activation_range(self.bits, bool(int(self.signed_flag)))
        s = self.scale(x)
        if self.mode == "lsq" or x.device.type != "cpu":   # a learned step (autograd through torch's
            return torch.clamp(round_ste(x / s), lo, hi) * s  # operations), or a device where float(s) syncs
        return fake_quantize(x, float(s), lo, hi)   # the same bits, one C++ pass each way

    def integers(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        if not bool(self.initialized):
            self._observe(x)
        lo, hi, _ = activation_range(self.bits, bool(int(self.signed_flag)))
        s = self.scale(x).detach()
        return torch.round(x.detach() / s).clamp(lo, hi).to(torch.int64), s, bool(int(self.signed_flag))


class QuantLayer:
    """Mixin of the quantized layers: the integers every consumer reads."""

    w_quant: WeightQuantizer
    a_quant: ActQuantizer

    @property
    def w_bits(self) -> int:
        return self.w_quant.bits

    @property
    def a_bits(self) -> int:
        return self.a_quant.bits

    def weight_scale(self) -> torch.Tensor:
        """Per-output-channel scale (differentiable in LSQ mode)."""
        return self.w_quant.scale(self.weight)

    def weight_integers(self, dtype: torch.dtype = torch.int64) -> Tuple[torch.Tensor, torch.Tensor]:
        """(integer weights as ``dtype``, per-channel scale) exactly as forward uses them."""
        return self.w_quant.integers(self.weight, dtype)

    def input_integers(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, bool]:
        """(int64 inputs, scale, signed) exactly as forward quantizes x."""
        return self.a_quant.integers(x)

    def _init_quant(self, w_bits, a_bits, weight_mode, act_mode):
        self.w_quant = WeightQuantizer(self.weight.shape[0], w_bits, weight_mode)
        self.a_quant = ActQuantizer(a_bits, act_mode)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", w_bits={self.w_bits}, a_bits={self.a_bits}"


class QLinear(QuantLayer, nn.Linear):
    def __init__(self, in_features, out_features, bias=True, w_bits=8, a_bits=8, weight_mode="lsq",
                 act_mode="running_max", device=None, dtype=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._init_quant(w_bits, a_bits, weight_mode, act_mode)

    def forward(self, x):
        return F.linear(self.a_quant(x), self.w_quant(self.weight), self.bias)


class QConv1d(QuantLayer, nn.Conv1d):
    def __init__(self, *args, w_bits=8, a_bits=8, weight_mode="lsq", act_mode="running_max", **kwargs):
        nn.Conv1d.__init__(self, *args, **kwargs)
        self._init_quant(w_bits, a_bits, weight_mode, act_mode)

    def forward(self, x):
        return self._conv_forward(self.a_quant(x), self.w_quant(self.weight), self.bias)


class QConv2d(QuantLayer, nn.Conv2d):
    def __init__(self, *args, w_bits=8, a_bits=8, weight_mode="lsq", act_mode="running_max", **kwargs):
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_quant(w_bits, a_bits, weight_mode, act_mode)

    def forward(self, x):
        return self._conv_forward(self.a_quant(x), self.w_quant(self.weight), self.bias)


class QMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with its four projections as quantized linear layers (``q_proj``,
    ``k_proj``, ``v_proj``, ``out_proj``), so that each is a crossbar matrix that every hamqcore walk
    sees (``nn.MultiheadAttention`` keeps q/k/v packed in ``in_proj_weight`` and calls ``out_proj``'s
    weight without its forward). The attention products QK^T and AV multiply activations by
    activations: they are not crossbar MACs and stay digital (the energy report says so). Same
    arguments and results as ``nn.MultiheadAttention.forward``; built by :func:`quantize_model`."""

    def __init__(self, mha: nn.MultiheadAttention, w_bits=8, a_bits=8, weight_mode="lsq", act_mode="running_max"):
        super().__init__()
        e, dev, dt = mha.embed_dim, mha.out_proj.weight.device, mha.out_proj.weight.dtype
        bias = mha.in_proj_bias is not None
        kw = dict(w_bits=w_bits, a_bits=a_bits, weight_mode=weight_mode, act_mode=act_mode, device=dev, dtype=dt)
        self.q_proj = QLinear(e, e, bias, **kw)
        self.k_proj = QLinear(mha.kdim, e, bias, **kw)
        self.v_proj = QLinear(mha.vdim, e, bias, **kw)
        self.out_proj = QLinear(e, e, mha.out_proj.bias is not None, **kw)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                wq, wk, wv = mha.in_proj_weight.chunk(3)
            else:
                wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
            for proj, wgt, i in ((self.q_proj, wq, 0), (self.k_proj, wk, 1), (self.v_proj, wv, 2)):
                proj.weight.copy_(wgt)
                if bias:
                    proj.bias.copy_(mha.in_proj_bias[i * e:(i + 1) * e])
            self.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                self.out_proj.bias.copy_(mha.out_proj.bias)
        self.embed_dim, self.num_heads, self.head_dim = e, mha.num_heads, e // mha.num_heads
        self.dropout, self.batch_first = mha.dropout, mha.batch_first
        # what nn.TransformerEncoder(Layer)'s fused fast path inspects: it is never taken with these
        self._qkv_same_embed_dim, self.in_proj_weight, self.in_proj_bias = False, None, None
        self.train(mha.training)

    def _mask(self, attn_mask, key_padding_mask, is_causal, n, tq, tk, dtype, device):
        """One additive mask (n, heads, tq, tk) from torch's mask conventions (bool: True = masked)."""
        mask = torch.zeros((n, self.num_heads, tq, tk), dtype=dtype, device=device)
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(tq, tk, dtype=torch.bool, device=device).triu(1)
        for m, shape in ((attn_mask, None), (key_padding_mask, (n, 1, 1, tk))):
            if m is None:
                continue
            add = torch.zeros_like(m, dtype=dtype).masked_fill(m, float("-inf")) if m.dtype == torch.bool else m.to(dtype)
            if shape is None:
                shape = (1, 1, tq, tk) if add.dim() == 2 else (n, self.num_heads, tq, tk)
            mask = mask + add.reshape(shape)
        return mask

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if self.batch_first and not unbatched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        tq, n, _ = query.shape
        tk = key.shape[0]
        h, d = self.num_heads, self.head_dim
        q = self.q_proj(query).reshape(tq, n, h, d).permute(1, 2, 0, 3)
        k = self.k_proj(key).reshape(tk, n, h, d).permute(1, 2, 0, 3)
        v = self.v_proj(value).reshape(tk, n, h, d).permute(1, 2, 0, 3)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        scores = scores + self._mask(attn_mask, key_padding_mask, is_causal, n, tq, tk, scores.dtype, scores.device)
        weights = torch.softmax(scores, dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = (weights @ v).permute(2, 0, 1, 3).reshape(tq, n, self.embed_dim)
        out = self.out_proj(out)
        if self.batch_first and not unbatched:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(1)
        if not need_weights:
            return out, None
        w = weights.mean(dim=1) if average_attn_weights else weights
        return out, (w.squeeze(0) if unbatched else w)


_SWAP = {nn.Linear: QLinear, nn.Conv1d: QConv1d, nn.Conv2d: QConv2d}


def _convert(m: nn.Module, w_bits, a_bits, weight_mode, act_mode) -> nn.Module:
    if isinstance(m, nn.Linear):
        q = QLinear(m.in_features, m.out_features, m.bias is not None, w_bits, a_bits, weight_mode, act_mode,
                    device=m.weight.device, dtype=m.weight.dtype)
    else:
        cls = QConv1d if isinstance(m, nn.Conv1d) else QConv2d
        q = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
                w_bits=w_bits, a_bits=a_bits, weight_mode=weight_mode, act_mode=act_mode,
                device=m.weight.device, dtype=m.weight.dtype)
    with torch.no_grad():
        q.weight.copy_(m.weight)
        if m.bias is not None:
            q.bias.copy_(m.bias)
    q.train(m.training)
    return q


def _int_quant_tensor(t, what: str, name: str):
    """(integers, step, bits, signed) of a Brevitas IntQuantTensor; a ValueError for a zero point ≠ 0."""
    if bool((t.zero_point != 0).any()):
        raise ValueError(f"layer {name!r}: its {what} quantizer has a zero point ≠ 0 (asymmetric); hamqcore maps "
                         "symmetric integers onto the crossbar")
    return t.int().to(torch.int32), t.scale, int(round(float(t.bit_width))), bool(t.signed)


def _from_torchao(obj) -> bool:
    """Whether ``obj``'s class is torchao's (recognised by its module, without importing torchao)."""
    return type(obj).__module__.split(".")[0] == "torchao"


def _torchao_weight(m: nn.Module):
    """``m.weight`` when torchao's ``quantize_`` replaced it by a quantized tensor subclass (recognised
    by its module and its ``qdata`` / ``scale`` / ``block_size``), else None."""
    w = getattr(m, "weight", None)
    if (isinstance(w, torch.Tensor) and _from_torchao(w)
            and all(hasattr(w, a) for a in ("qdata", "scale", "block_size"))):
        return w
    return None


def is_torchao_layer(m: nn.Module) -> bool:
    """Whether ``m``'s weight is torchao's quantized tensor (post-training integer codes, frozen)."""
    return _torchao_weight(m) is not None


# torchao's integer weight tensors whose ``qdata`` holds one signed integer per weight, unpacked:
# Int8Tensor (Int8WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig) and
# IntxUnpackedToInt8Tensor (IntxWeightOnlyConfig, 1..8 bits: its target_dtype torch.int1 .. torch.int8).
_TORCHAO_TYPES = ("Int8Tensor", "IntxUnpackedToInt8Tensor")


def _torchao_quant(w, name: str):
    """(integers, step broadcastable to the weight, bits) of a torchao weight tensor ``w`` (signed,
    value = qdata x scale with a zero zero point). Packed or floating-point formats, and asymmetric
    ones, are a ValueError naming the layer."""
    kind = type(w).__name__
    if kind not in _TORCHAO_TYPES:
        raise ValueError(f"layer {name!r}: torchao weight format {kind} is not read by hamqcore (it reads "
                         f"{' and '.join(_TORCHAO_TYPES)}: one signed integer per weight with its scales; e.g. "
                         "Int8WeightOnlyConfig or IntxWeightOnlyConfig)")
    zp = getattr(w, "zero_point", None)
    if zp is not None and bool((zp != 0).any()):
        raise ValueError(f"layer {name!r}: its torchao weight has a zero point ≠ 0 (asymmetric); hamqcore maps "
                         "symmetric integers onto the crossbar")
    if kind == "Int8Tensor":
        bits = 8
    else:
        bits = _torchao_width(getattr(w, "target_dtype", None), name, "weight")
    bits = max(bits, 2)   # 1-bit signed codes {-1, 0}: hamqcore's narrowest symmetric levels hold them
    q = w.qdata.to(torch.int32)
    step = w.scale.detach()
    if step.dim() != q.dim():
        raise ValueError(f"layer {name!r}: torchao scale of shape {tuple(step.shape)} does not match its "
                         f"{q.dim()}-d weight")
    for dim, size in enumerate(w.block_size):   # each scale covers a block of the weight: expand it
        if size > 1 and step.shape[dim] > 1:
            step = step.repeat_interleave(int(size), dim)
    return q, step, bits


def _torchao_width(dtype, name: str, what: str) -> int:
    """Bits of torchao's signed integer ``dtype`` (torch.int1 .. torch.int8), else a ValueError."""
    widths = {getattr(torch, f"int{b}"): b for b in range(1, 9) if hasattr(torch, f"int{b}")}
    if dtype not in widths:
        raise ValueError(f"layer {name!r}: torchao {what} with dtype {dtype} is not a signed integer of 1..8 bits")
    return widths[dtype]


def _fake_quantizer(m: nn.Module, attr: str, name: str = ""):
    """torchao QAT's enabled fake quantizer ``m.<attr>`` (``FakeQuantizedLinear``'s
    ``weight_fake_quantizer`` / ``activation_fake_quantizer``, recognised by its module), else None."""
    fq = getattr(m, attr, None)
    if fq is None or not _from_torchao(fq) or not getattr(fq, "enabled", True):
        return None
    kind = type(fq).__name__
    if kind not in ("IntxFakeQuantizer", "FakeQuantizer") or not hasattr(fq, "config"):
        raise ValueError(f"layer {name!r}: torchao fake quantizer {kind} is not read by "
                         "hamqcore (it reads IntxFakeQuantizer: integers with their scales)")
    return fq


def _torchao_qat_weight(m: nn.Module, name: str):
    """(integers, step, bits) of a torchao QAT layer's weight: the codes its
    ``weight_fake_quantizer`` rounds to in its forward pass (torchao's own ``_do_fake_quantize_affine``
    with the scales that forward computes, or holds when static), never re-quantized by hamqcore. The
    step is (out, groups): PerGroup's groups are contiguous runs of a row."""
    from torchao.quantization.quant_primitives import _do_fake_quantize_affine
    fq = _fake_quantizer(m, "weight_fake_quantizer", name)
    cfg = fq.config
    kind = type(cfg.granularity).__name__
    if kind not in ("PerAxis", "PerGroup"):
        raise ValueError(f"layer {name!r}: torchao weight fake quantizer with granularity {kind} is not read "
                         "(hamqcore reads PerAxis(0) and PerGroup)")
    if not cfg.is_symmetric:
        raise ValueError(f"layer {name!r}: its torchao weight fake quantizer is asymmetric (zero points); hamqcore "
                         "maps symmetric integers onto the crossbar")
    bits = _torchao_width(cfg.dtype, name, "weight fake quantizer")
    w = m.weight.detach()
    with torch.no_grad():
        fq(w)                       # its own forward sets (dynamic) or keeps (static) its scales
    group = w.shape[-1] if kind == "PerAxis" else int(cfg.granularity.group_size)
    qmin, qmax, _ = activation_range(bits, signed=True)      # torchao's full signed grid
    q, _ = _do_fake_quantize_affine(w, (1, group), fq.scale, fq.zero_point, torch.int32, qmin, qmax,
                                    cfg.zero_point_domain)
    if fq.zero_point is not None and bool((fq.zero_point != 0).any()):
        raise ValueError(f"layer {name!r}: its torchao weight has a zero point ≠ 0 (asymmetric); hamqcore maps "
                         "symmetric integers onto the crossbar")
    return q.to(torch.int32), fq.scale.reshape(w.shape[0], -1), max(bits, 2)


# torch.ao's eager-mode quantized modules (torch.ao.quantization.convert / quantize_dynamic): the
# weighted ones hamqcore maps, and the post-op each fused variant applies to the layer's output
# (torch/ao/nn/intrinsic/quantized/modules/{conv_relu,linear_relu}.py, .../dynamic/modules/linear_relu.py).
class _TorchAoTypes(NamedTuple):
    mapped: tuple           # the weighted classes hamqcore maps (their fused variants subclass them)
    post_ops: dict          # class -> the post-op it applies to its output (None: none)
    linear: type
    conv1d: type
    dynamic_linear: type


@functools.lru_cache(maxsize=None)
def _torch_ao_types() -> _TorchAoTypes:
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.intrinsic.quantized.dynamic as nniqd
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd
    post_ops = {nnq.Linear: None, nnqd.Linear: None, nnq.Conv1d: None, nnq.Conv2d: None,
                nniq.LinearReLU: "relu", nniqd.LinearReLU: "relu", nniq.ConvReLU1d: "relu", nniq.ConvReLU2d: "relu"}
    return _TorchAoTypes((nnq.Linear, nnq.Conv1d, nnq.Conv2d), post_ops, nnq.Linear, nnq.Conv1d, nnqd.Linear)


def is_torch_ao_layer(m: nn.Module) -> bool:
    """Whether ``m`` is torch.ao's eager-mode quantized Linear (static or dynamic), Conv1d or Conv2d, or
    a fused variant of one, with qint8 weights (post-training integers behind a ``weight()`` method,
    frozen; a dynamic Linear with float16 weights holds no integers)."""
    return (type(m).__module__.startswith("torch.ao.nn.") and isinstance(m, _torch_ao_types().mapped)
            and getattr(getattr(m, "_packed_params", None), "dtype", torch.qint8) == torch.qint8)


def is_linear(m: nn.Module) -> bool:
    """Whether a mapped layer is a Linear one (torch's or torch.ao's): its input vectors lie on the last axis."""
    return isinstance(m, nn.Linear) or (is_torch_ao_layer(m) and isinstance(m, _torch_ao_types().linear))


def is_conv1d(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv1d) or (is_torch_ao_layer(m) and isinstance(m, _torch_ao_types().conv1d))


def weight_shape(m: nn.Module) -> Tuple[int, ...]:
    """The shape of a mapped layer's weight (torch.ao's is behind ``weight()``)."""
    return tuple((m.weight() if is_torch_ao_layer(m) else m.weight).shape)


def layer_bias(m: nn.Module) -> Optional[torch.Tensor]:
    """A mapped layer's float bias, or None (torch.ao's is behind ``bias()``)."""
    b = m.bias() if is_torch_ao_layer(m) else m.bias
    return None if b is None else b.detach()


def input_value(x) -> torch.Tensor:
    """The real values of a layer input: a Brevitas quant tensor's ``value``, a torch quantized tensor
    dequantized, else ``x``."""
    if isinstance(x, torch.Tensor) and x.is_quantized:
        return x.dequantize()
    return getattr(x, "value", x)


def _torch_ao_weight_quant(m: nn.Module, name: str):
    """(integers, step per output channel shaped to broadcast, bits) of torch.ao's packed qint8 weight:
    ``int_repr()`` minus its zero points (per tensor or per channel along axis 0), one bit more where
    any zero point is ≠ 0."""
    w = m.weight()
    scheme = w.qscheme()
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        step = torch.tensor([w.q_scale()], dtype=torch.float64)
        zp = torch.tensor([w.q_zero_point()], dtype=torch.int32)
    elif scheme in (torch.per_channel_affine, torch.per_channel_symmetric) and w.q_per_channel_axis() == 0:
        step = w.q_per_channel_scales().to(torch.float64)
        zp = w.q_per_channel_zero_points().to(torch.int32)
    else:
        raise ValueError(f"layer {name!r}: torch.ao weight quantization {scheme} (axis "
                         f"{w.q_per_channel_axis() if 'channel' in str(scheme) else '-'}) is not read by hamqcore "
                         "(it reads per-tensor and per-output-channel scales)")
    lead = (-1,) + (1,) * (w.dim() - 1)
    q = w.int_repr().to(torch.int32) - zp.reshape(lead)
    return q, step.reshape(lead), 8 + int(bool((zp != 0).any()))


def _torch_ao_input_quant(m: nn.Module, x, name: str):
    """(integers, step, bits, signed) torch.ao's module computes with on input ``x``: a static module's
    quint8 input as it arrives (``int_repr()``; unsigned where its zero point is 0, else q - zero point,
    signed, one bit more), a dynamic Linear's float input quantized as its op quantizes it
    (``torch._choose_qparams_per_tensor`` with reduce_range for module version >= 4, as
    torch/ao/nn/quantized/dynamic/modules/linear.py calls ``quantized::linear_dynamic``; 7-bit codes
    then)."""
    if isinstance(m, _torch_ao_types().dynamic_linear):
        x = input_value(x).detach()
        reduce_range = not (getattr(m, "version", None) is None or m.version < 4)
        scale, zp = torch._choose_qparams_per_tensor(x, reduce_range)
        q = torch.quantize_per_tensor(x.to(torch.float32), scale, zp, torch.quint8).int_repr().to(torch.int32)
        bits, unsigned = (7 if reduce_range else 8), True
    else:
        if not (isinstance(x, torch.Tensor) and x.is_quantized and x.qscheme() == torch.per_tensor_affine
                and x.dtype in (torch.quint8, torch.qint8)):
            raise ValueError(f"layer {name!r}: torch.ao's {type(m).__name__} takes an 8-bit per-tensor quantized "
                             f"input, got {getattr(x, 'dtype', type(x).__name__)}")
        q, scale, zp, bits = x.int_repr().to(torch.int32), x.q_scale(), x.q_zero_point(), 8
        unsigned = x.dtype == torch.quint8
    step = torch.tensor(float(scale), dtype=torch.float64)
    if unsigned and zp == 0:            # unsigned codes with no zero point: read as they are
        return q, step, bits, False
    return _centered(q, torch.tensor([zp]), step, bits, ())


def torch_ao_output(m: nn.Module, y: torch.Tensor, out: torch.Tensor, name: str = "") -> torch.Tensor:
    """A torch.ao layer's output from its real pre-activation ``y`` (float64, bias included): its fused
    post-op applied, then requantized to the module's own output scale and zero point (a static
    module; ``quantize_per_tensor``: round to nearest, clamped to the dtype) or as floats (dynamic).
    A fused post-op hamqcore does not know (e.g. ConvAdd2d's second input) is a ValueError."""
    post_ops = _torch_ao_types().post_ops
    if type(m) not in post_ops:
        raise ValueError(f"layer {name!r}: torch.ao's fused {type(m).__name__} applies a post-op hamqcore does not "
                         "read (it reads Linear, Conv1d, Conv2d and their ReLU fusions), so its crossbar output "
                         "cannot be formed; its energy can (estimate_energy)")
    if post_ops[type(m)] == "relu":
        y = torch.clamp(y, min=0.0)
    if out.is_quantized:
        return torch.quantize_per_tensor(y.to(torch.float32), out.q_scale(), out.q_zero_point(), out.dtype)
    return y.to(out.dtype)


def has_library_weight_quant(m: nn.Module) -> bool:
    """Whether ``m`` is another library's layer with weight quantization on (Brevitas: ``quant_weight``
    and an enabled ``weight_quant``; torchao: a quantized weight tensor, or a QAT layer's enabled
    weight fake quantizer; torch.ao: its eager-mode quantized modules); nothing is computed."""
    if _torchao_weight(m) is not None or is_torch_ao_layer(m):
        return True
    fq = getattr(m, "weight_fake_quantizer", None)
    if fq is not None and _from_torchao(fq):
        return bool(getattr(fq, "enabled", True))
    return callable(getattr(m, "quant_weight", None)) and getattr(getattr(m, "weight_quant", None),
                                                                   "is_quant_enabled", False)


def library_weight_quant(m: nn.Module, name: str = ""):
    """A quantization library's own weight quantization of layer ``m``: (integers, step, bits), the
    step broadcastable to the weight (per tensor or per output channel, with its autograd graph: the
    HamQ penalty trains through it; torchao's per block; a torchao QAT layer's (out, groups), each group
    a contiguous run of a row), or None when ``m`` has none. Brevitas:
    ``m.quant_weight()``, an IntQuantTensor (``int()``, ``scale``, ``bit_width``) when
    ``m.weight_quant.is_quant_enabled``; unsigned integers need one bit more in the signed mappings
    (bits + 1). torchao: the weight's ``qdata`` and ``scale`` (``_torchao_quant``). torch.ao: its packed
    qint8 weight's integers and scales (``_torch_ao_weight_quant``).

    hamqcore's b-bit levels are symmetric, |q| <= 2^(b-1) - 1 (the differential and sign-magnitude
    encodings need it); a library grid that uses the extra code -2^(b-1) (torchao's full-range
    grids, Brevitas without narrow range) is read as b + 1 bits, its integers unchanged."""
    w = _torchao_weight(m)
    if w is not None:
        q, step, bits = _torchao_quant(w, name)
    elif is_torch_ao_layer(m):
        q, step, bits = _torch_ao_weight_quant(m, name)
    elif not has_library_weight_quant(m):
        return None
    elif hasattr(m, "weight_fake_quantizer"):
        q, step, bits = _torchao_qat_weight(m, name)
    else:
        q, step, bits, signed = _int_quant_tensor(m.quant_weight(), "weight", name)
        bits = bits if signed else bits + 1
    if q.numel() and int(q.min()) < -level_max(bits):
        bits += 1
    return q, step, bits


def library_input_quant(m: nn.Module, x, name: str = ""):
    """A quantization library's own input integers of layer ``m`` on its input ``x``: (integers, step,
    bits, signed), or None when it quantizes no input. Brevitas: ``x`` already a QuantTensor (from a
    QuantIdentity / QuantReLU returning quant tensors), or ``m.input_quant`` enabled. torchao: a QAT
    layer's activation fake quantizer (per token), an ``Int8Tensor`` weight's ``act_quant_kwargs``
    (dynamic per row / per tensor, or its static scale; after its ``act_pre_scale``), an
    ``IntxUnpackedToInt8Tensor``'s int8 asymmetric per-token inputs, each by torchao's own functions;
    the step is then one per token, shaped (*leading dims, 1), applied after the crossbar."""
    if is_torch_ao_layer(m):
        return _torch_ao_input_quant(m, x, name)
    if callable(getattr(x, "int", None)) and hasattr(x, "bit_width"):
        return _int_quant_tensor(x, "input", name)
    if _fake_quantizer(m, "activation_fake_quantizer", name) is not None or _torchao_weight(m) is not None:
        return _torchao_input_quant(m, x, name)
    iq = getattr(m, "input_quant", None)
    if callable(getattr(m, "quant_weight", None)) and getattr(iq, "is_quant_enabled", False):
        return _int_quant_tensor(iq(x), "input", name)
    return None


def _centered(q: torch.Tensor, zero_point, step: torch.Tensor, bits: int, lead: Tuple[int, ...]):
    """(q - zero point, step, bits, signed) of a library's affine input integers: the crossbar reads the
    centered integers (value = (q - zp) x step), which span one bit more than q where any zero point
    is ≠ 0 ([qmin - zp, qmax - zp] within ±(2^bits - 1)); a step per token (``lead``, the input's
    leading shape) is kept per token, shaped (*lead, 1)."""
    if zero_point is not None and bool((zero_point != 0).any()):
        q = q - zero_point.reshape(*zero_point.shape, *([1] * (q.dim() - zero_point.dim())))
        bits += 1
    step = step.detach()
    if step.numel() > 1:
        step = step.reshape(*lead, 1) if step.numel() == math.prod(lead) else step
    return q.to(torch.int32), step.reshape(()) if step.numel() == 1 else step, bits, True


def _torchao_input_quant(m: nn.Module, x, name: str):
    """torchao's own input integers of layer ``m`` on ``x`` (see :func:`library_input_quant`), or None
    for a weight-only layer."""
    from torchao.quantization.quant_primitives import MappingType, _do_fake_quantize_affine, choose_qparams_affine
    from torchao.quantization.utils import _get_per_token_block_size
    x = x.detach()
    lead = tuple(x.shape[:-1])
    fq = _fake_quantizer(m, "activation_fake_quantizer", name)
    if fq is not None:                          # QAT: the codes its forward rounds to
        cfg = fq.config
        if type(cfg.granularity).__name__ != "PerToken":
            raise ValueError(f"layer {name!r}: torchao activation fake quantizer with granularity "
                             f"{type(cfg.granularity).__name__} is not read (hamqcore reads PerToken)")
        bits = _torchao_width(cfg.dtype, name, "activation fake quantizer")
        with torch.no_grad():
            fq(x)
        qmin, qmax, _ = activation_range(bits, signed=True)
        q, _ = _do_fake_quantize_affine(x, _get_per_token_block_size(x), fq.scale, fq.zero_point, torch.int32,
                                        qmin, qmax)
        return _centered(q, fq.zero_point.reshape(lead), fq.scale, bits, lead)
    w = _torchao_weight(m)
    kwargs, kind = getattr(w, "act_quant_kwargs", None), getattr(w, "activation_quantization", None)
    if kwargs is not None:                      # Int8Tensor: dynamic (or static-scale) int8 inputs
        from torchao.quantization.quantize_.common.quantize_tensor_kwargs import \
            _choose_quant_func_and_quantize_tensor
        if getattr(w, "act_pre_scale", None) is not None:
            x = x * w.act_pre_scale
        t = _choose_quant_func_and_quantize_tensor(x, kwargs, scale=getattr(w, "act_quant_scale", None),
                                                   zero_point=getattr(w, "act_quant_zero_point", None))
        if type(t).__name__ != "Int8Tensor":
            raise ValueError(f"layer {name!r}: torchao quantizes its inputs to {type(t).__name__}, not read by "
                             "hamqcore (it reads integer inputs)")
        bits = 7 if getattr(kwargs, "reduce_range", False) else 8   # reduce_range: [-64, 63]
        return _centered(t.qdata.to(torch.int32), t.zero_point, t.scale, bits, lead)
    if kind is not None:                        # IntxUnpackedToInt8Tensor: int8 asymmetric per token
        if str(getattr(kind, "value", kind)) != "int8_asym_per_token":
            raise ValueError(f"layer {name!r}: torchao activation quantization {kind} is not read by hamqcore")
        block = _get_per_token_block_size(x)    # as torchao's _apply_int8_act_asym_per_token_quant_dequant
        qmin, qmax, _ = activation_range(8, signed=True)
        scale, zp = choose_qparams_affine(x, MappingType.ASYMMETRIC, block, target_dtype=torch.int8,
                                          quant_min=qmin, quant_max=qmax, zero_point_dtype=torch.int8)
        q, _ = _do_fake_quantize_affine(x, block, scale, zp, torch.int32, qmin, qmax)
        return _centered(q, zp.reshape(lead), scale, 8, lead)
    return None


def quantize_model(model: nn.Module, w_bits: int = 8, a_bits: int = 8, skip: Iterable[str] = (),
                   weight_mode: str = "lsq", act_mode: str = "running_max") -> nn.Module:
    """Swap every Linear/Conv1d/Conv2d of ``model`` (in place) for its quantized twin, and every
    ``nn.MultiheadAttention`` (without ``add_bias_kv``/``add_zero_attn``) for a
    :class:`QMultiheadAttention`, keeping the trained weights. ``skip``: module names or fnmatch
    patterns to leave in float. Returns model; what stays uncovered is in
    :func:`hamqcore.layers.coverage` (and warned about)."""
    check_bits("w_bits", w_bits)
    check_bits("a_bits", a_bits)
    check_choice("weight_mode", weight_mode, WEIGHT_MODES)
    check_choice("act_mode", act_mode, ACT_MODES)
    skip = [skip] if isinstance(skip, str) else list(skip)
    def wanted(name, m):
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            return False
        if isinstance(m, nn.MultiheadAttention):
            return m.bias_k is None and not m.add_zero_attn
        return type(m) in _SWAP and not _inside_attention(model, name)

    targets = [name for name, m in model.named_modules() if wanted(name, m)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        new = (QMultiheadAttention(old, w_bits, a_bits, weight_mode, act_mode) if isinstance(old, nn.MultiheadAttention)
               else _convert(old, w_bits, a_bits, weight_mode, act_mode))
        setattr(parent, child, new)
    return model


def _inside_attention(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is a submodule of an nn.MultiheadAttention (its out_proj: converted with it)."""
    parts = name.split(".")
    return any(isinstance(model.get_submodule(".".join(parts[:i])), nn.MultiheadAttention)
               for i in range(1, len(parts)))
