"""The HamQ regularizer: one line in any PyTorch training loop.

    reg = hamqcore.nn.HamQRegularizer(model, bits=8, lam=0.05, example_input=x[:1])
    loss = criterion(model(x), y) + reg()

``reg()`` is ``lam`` times a weighted mean of the relaxed Hamming weight of every layer's
quantized weights, so its scale is "ON cells per weight" (0..bits) whatever the model's size:

* ``weighting="energy"`` (default): each weight counts as often as it is read per inference (the
  number of output positions of its conv, the number of vectors of a linear layer), so the
  penalty is proportional to the expected number of ON cells read per inference, i.e. the cell
  energy. Reads are measured by one dry forward pass on ``example_input`` (or ``input_shape``).
* ``weighting="params"``: every weight counts once (total HW / total weights).
* ``weighting="uniform"``: every layer counts once (mean over layers of each layer's mean HW).
* ``weighting="crossbar"``: each bit of each layer's code is priced by the energy an ON cell there
  costs in the crossbar simulator under ``crossbar`` (a :class:`~hamqcore.crossbar.CrossbarConfig`),
  measured on ``example_input`` by :func:`hamqcore.energy.bit_prices` (the conversions, ADC
  resolution and array reads a cell keeps alive under the HW-aware periphery). The penalty is
  sum over weights of the relaxed level cost C(q) = sum_p price_p bit_p(q), divided by the mean
  price of an ON cell at the first pricing and by the number of weights: at that point it equals the
  mean HW, so ``lam`` reads as with ``"params"``. ``refresh()`` re-prices (training calls it every
  epoch); the unit stays fixed, so the penalty follows the energy as it falls.

Train with a learned quantization step (``quantize_model(..., weight_mode="lsq")``): with the
``"max"`` step (max|w| / qmax) the integers are invariant to scaling the weights, so the penalty
mostly shrinks the step instead of moving weights to low-HW levels. On scikit-learn's digits
(tests/test_torch.py) LSQ with lam=0.3 cut the total HW by 79 % for -1 pt accuracy, where the
max step cut 23 % for -3.5 pt.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import kernels, ops
from ._checks import MAX_BITS, check_choice, check_nonneg
from .crossbar import check_config
from .layers import NOT_CALLED, check_batch, coverage, dry_run, layer_integers, quantizable_layers
from .pricing import bit_prices, check_encoding, price_unit
from .quant import QuantLayer, is_linear, is_torch_ao_layer, is_torchao_layer, library_weight_quant

WEIGHTINGS = ("energy", "uniform", "params", "crossbar")


def hamming_penalty(w: torch.Tensor, scale=None, bits: int = 8, encoding: str = "differential",
                    reduction: str = "mean", bit_cost=None) -> torch.Tensor:
    """Relaxed HW of ``w / scale`` (scale per tensor or per output channel, broadcast; None = each
    output channel's symmetric max step max|w| / (2^(bits-1) - 1), held constant).

    Differentiable w.r.t. ``w`` and, when it requires grad, ``scale``
    (d/ds H(w/s) = -w/s^2 H'(w/s)). One fused pass: no scaled copy of w is made. ``bit_cost``
    (shape (bits,) or (rows, bits), LSB first) prices each bit of the code instead of counting it.
    """
    return ops.scaled_hw_penalty(w, scale, bits, encoding, reduction, bit_cost=bit_cost)


def reads_per_weight(model: nn.Module, layers: Sequence[Tuple[str, nn.Module]], example_input) -> Dict[str, float]:
    """How many times each weight of each layer is read per inference: output positions of a conv,
    vectors of a linear layer (tokens included, whatever the layout); measured with forward hooks on
    one dry pass (no grad) and divided by the example's batch size."""
    counts: Dict[str, float] = {}
    batch = int(example_input.shape[0]) if isinstance(example_input, torch.Tensor) and example_input.dim() else 1

    def hook(name):
        def fn(module, inputs, output):
            if is_linear(module):
                counts[name] = counts.get(name, 0.0) + output.numel() / output.shape[-1] / batch
            else:
                counts[name] = counts.get(name, 0.0) + float(np.prod(output.shape[2:]))
        return fn

    dry_run(model, example_input, [m.register_forward_hook(hook(name)) for name, m in layers])
    return {name: counts.get(name, 0.0) for name, _ in layers}


def _layer_quant(m: nn.Module, bits: int) -> Tuple[Optional[torch.Tensor], int]:
    """(the layer's quantization step, or None for the symmetric max step computed in the op; its
    weight bits, ``bits`` for a float layer). Another library's layer is asked once."""
    if isinstance(m, QuantLayer):
        return (m.weight_scale() if m.w_quant.mode != "max" else None), m.w_bits
    lib = library_weight_quant(m)
    return (None, bits) if lib is None else (lib[1], lib[2])


class HamQRegularizer(nn.Module):
    """Relaxed-HW regularizer over a model's Conv1d/Conv2d/Linear weights (see module docs).

    Quantized layers (:mod:`hamqcore.quant`) use their own scales and bits; other layers are
    scaled per output channel by max|w| / (2^(bits-1) - 1). ``lam`` may be changed between steps
    (``reg.lam = ...``) for warm-up schedules.

    ``target`` (a fraction in (0, 1)): instead of a fixed lam, reach a penalty of ``target`` times its
    value at the first call: every call moves log lam by ``gain`` x the relative error (an integral
    controller; ``reg.ratio`` is the penalty over its start, ``reg.lam`` the current lam). The same
    lam transfers poorly between architectures (a depthwise net's weights move far less per unit of
    penalty than a ResNet's); a target does.
    """

    def __init__(self, model: nn.Module, bits: int = 8, lam: float = 0.01, encoding: str = "differential",
                 weighting: str = "energy", include: Optional[Iterable[str]] = None, exclude: Iterable[str] = (),
                 example_input: Optional[torch.Tensor] = None, input_shape: Optional[Sequence[int]] = None,
                 crossbar=None, target: Optional[float] = None, gain: float = 0.05):
        super().__init__()
        ops.check_penalty_args(bits, encoding, "sum")
        check_choice("weighting", weighting, WEIGHTINGS)
        if example_input is not None:
            check_batch("example_input", example_input)
        self.bits, self.encoding, self.weighting = bits, encoding, weighting
        self.lam = lam
        self.target, self.gain, self._start, self.ratio = None, check_nonneg("gain", gain), None, None
        if target is not None:
            target = check_nonneg("target", target)
            if not 0 < target < 1:
                raise ValueError(f"target must be a fraction in (0, 1) of the starting penalty, got {target!r}")
            if self._lam <= 0:
                raise ValueError("target needs a starting lam > 0 for its controller to scale")
            self.target = target
        # keep a plain reference (not a submodule) so the regularizer adds no parameters
        object.__setattr__(self, "_model", model)
        self.layers = quantizable_layers(model, include, exclude)
        if not self.layers:
            raise ValueError("model has no Conv1d, Conv2d or Linear layer to regularize (after include/exclude)")
        frozen = [name for name, m in self.layers if is_torchao_layer(m)]
        if frozen:
            raise ValueError(f"layer(s) {frozen} hold torchao's quantized integer codes (post-training quantization, "
                             "no gradient): the penalty needs trainable weights; regularize the float model before "
                             "torchao's quantize_, or leave them out with exclude=")
        frozen = [name for name, m in self.layers if is_torch_ao_layer(m)]
        if frozen:
            raise ValueError(f"layer(s) {frozen} are torch.ao's quantized modules (packed post-training integers, no "
                             "gradient): the penalty needs trainable weights; regularize the float model before "
                             "torch.ao's convert, or leave them out with exclude=")
        self.coverage = coverage(model, include, exclude)
        sizes = {name: m.weight.numel() for name, m in self.layers}
        self.bit_cost: Dict[str, Optional[torch.Tensor]] = {name: None for name in sizes}
        self.crossbar, self.unit = None, None
        if weighting == "crossbar":
            check_encoding(check_config(crossbar, "crossbar"), encoding)
            if example_input is None:
                raise ValueError("weighting='crossbar' needs example_input: the inputs its energy is priced on")
            self.crossbar, self._price_input = crossbar, example_input
            total = sum(sizes.values())
            self.coef = {n: 1.0 / total for n in sizes}
            self.refresh()
        elif crossbar is not None:
            raise ValueError(f"crossbar is used by weighting='crossbar' only, got weighting={weighting!r}")
        elif weighting == "energy":
            if example_input is None:
                if input_shape is None:
                    raise ValueError("weighting='energy' needs example_input or input_shape to count weight reads")
                p = next(model.parameters())
                example_input = torch.zeros((1, *input_shape), dtype=p.dtype, device=p.device)
            reads = reads_per_weight(model, self.layers, example_input)
            self.coverage.move((n for n in sizes if reads[n] == 0), NOT_CALLED)
            total = sum(reads[n] * sizes[n] for n in sizes)
            self.coef = {n: reads[n] / total for n in sizes}
        elif weighting == "params":
            total = sum(sizes.values())
            self.coef = {n: 1.0 / total for n in sizes}
        else:
            self.coef = {n: 1.0 / (len(sizes) * sizes[n]) for n in sizes}
        self.coverage.warn("HamQRegularizer")

    def refresh(self, rescale: bool = False) -> Dict[str, np.ndarray]:
        """Re-price every bit of every layer in the crossbar simulator (``weighting="crossbar"``);
        returns the prices (J per ON cell per inference). The first call, or one with ``rescale``,
        sets the unit (the mean price of an ON cell now), so the penalty equals the mean HW then."""
        if self.weighting != "crossbar":
            raise ValueError(f"refresh() prices bits for weighting='crossbar', this regularizer has {self.weighting!r}")
        prices = bit_prices(self._model, self._price_input, self.crossbar, w_bits=self.bits, a_bits=self.bits)
        if self.unit is None or rescale:
            # summed in the order of the regularizer's layers (the model's module order)
            self.unit = price_unit(self._model, {n: prices[n] for n, _ in self.layers if n in prices}, self.encoding,
                                   self.bits)
        for name, m in self.layers:
            b = _layer_quant(m, self.bits)[1]
            price = prices.get(name, np.zeros(b))
            self.bit_cost[name] = torch.as_tensor(price / self.unit, dtype=torch.float64)
        return prices

    @property
    def lam(self) -> float:
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        self._lam = check_nonneg("lam", value)

    def penalty(self, lam: float = 1.0) -> torch.Tensor:
        """``lam`` x the weighted mean relaxed HW (ON cells per weight). Each layer's coefficient is
        applied inside the fused op, so backward passes its gradient on without another pass."""
        total = None
        for name, m in self.layers:
            scale, b = _layer_quant(m, self.bits)
            w = m.weight
            if scale is not None and scale.numel() > w.shape[0]:
                # a step per group of each row (torchao QAT's PerGroup): every group is a row of the op
                # (the layer's bit prices are one per bit, the same for every row)
                w, scale = w.reshape(scale.numel(), -1), scale.reshape(-1)
            term = ops.scaled_hw_penalty(w, scale, b, self.encoding, "sum", weight=lam * self.coef[name],
                                         bit_cost=self.bit_cost[name])
            total = term if total is None else total + term
        return total

    def forward(self) -> torch.Tensor:
        if self._lam == 0.0:
            p = self.layers[0][1].weight
            return torch.zeros((), dtype=p.dtype, device=p.device)
        value = self.penalty(self._lam)
        if self.target is not None:
            self._control(float(value.detach()) / self._lam)
        return value

    def _control(self, mean_cost: float) -> None:
        """target mode: lam follows log lam <- log lam + gain (mean_cost / start - target) / target, an
        integral controller on the ratio of the penalty (ON cells per weight, or priced cells) to its
        value at the first call. Above the target lam grows, below it shrinks, so the ratio settles near
        the target whatever the model's lam scale (lam per architecture need not be tuned by hand)."""
        if self._start is None:
            self._start = max(mean_cost, 1e-12)
        self.ratio = mean_cost / self._start
        error = (self.ratio - self.target) / self.target
        self._lam = float(min(max(self._lam * math.exp(self.gain * error), 1e-8), 1e8))


    def extra_repr(self) -> str:
        return (f"layers={len(self.layers)}, bits={self.bits}, lam={self._lam}, encoding={self.encoding!r}, "
                f"weighting={self.weighting!r}")


def hw_stats(model: nn.Module, bits: int = 8, encoding: str = "differential",
             include: Optional[Iterable[str]] = None, exclude: Iterable[str] = ()) -> Dict[str, Dict[str, object]]:
    """Per layer: HW histogram, mean HW and weight count of the quantized weights; plus "total"."""
    ops.check_penalty_args(bits, encoding, "sum")
    stats: Dict[str, Dict[str, object]] = {}
    all_hist = np.zeros(MAX_BITS + 1, dtype=np.int64)
    for name, m in quantizable_layers(model, include, exclude):
        q, b = layer_integers(m, bits, name)
        hist = kernels.hw_histogram(q, b, encoding)
        n = int(q.size)
        stats[name] = {"bits": b, "weights": n, "histogram": hist.tolist(),
                       "mean_hw": float((hist * np.arange(b + 1)).sum() / n) if n else 0.0,
                       "total_hw": int((hist * np.arange(b + 1)).sum())}
        all_hist[: b + 1] += hist
    n = int(all_hist.sum())
    total_hw = int((all_hist * np.arange(MAX_BITS + 1)).sum())
    stats["total"] = {"weights": n, "total_hw": total_hw, "mean_hw": total_hw / n if n else 0.0,
                      "histogram": all_hist.tolist()}
    return stats
