"""Gradient-free HW-aware rounding: lower a trained quantized model's ON cells without training.

    rounded, stats = hw_aware_round(model, calib_x, lam=0.01)

Every hamqcore quantized layer (:mod:`hamqcore.quant`), in the order the forward pass calls them,
gets new integer weights from the C++ kernel (``cpp/include/hamqcore/rounding.hpp``): GPTQ/OBQ-style
rounding with error feedback through the inverse calibration Hessian H = X^T X of the layer's inputs,
minimising per layer

    ||(W - s Q) X||^2 / ||W X||^2  +  lam * mean_k C(q_k)

(the layer's relative output error on the calibration inputs, plus lam times its mean level cost per
weight: C the level's HW in ``encoding``, or its crossbar price with ``crossbar=``): ``lam = 0.01``
trades one ON cell per weight for 1 % of the layer's output. Weight by weight, each picks the level
within ``radius`` of its nearest that minimises its share, (x - q)^2 s^2 / ([H_F^-1]_ii ||W X||^2)
+ lam C(q) / n_weights (x the weight in levels after the earlier weights' error feedback). Each layer's
inputs are taken from the model rounded so far (so later layers see, and compensate, the rounding of
earlier ones). The integers become the layer's quantized weights (weight = step x integer, with the
layer's step unchanged), so the model runs, trains and is simulated as usual.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import _core, kernels
from ._checks import check_choice, check_int, check_nonneg, level_max
from .crossbar import CrossbarConfig, check_config
from .layers import capture_layer_inputs, check_batch, coverage, evaluating, float_layers, im2col
from .pricing import bit_prices, check_encoding, price_unit
from .quant import QuantLayer

CHUNK = 32  # calibration inputs per im2col chunk while accumulating H


class _Captured(Exception):
    """Raised by the capture hook: the rest of the forward pass is not needed."""


def _capture(model: nn.Module, module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``module``'s input when ``model`` runs on ``inputs`` (eval, no grad), stopping the forward pass
    at the module (its first call)."""
    box: List[torch.Tensor] = []

    def hook(mod, args):
        box.append(args[0].detach())
        raise _Captured

    handle = module.register_forward_pre_hook(hook)
    try:
        with evaluating(model):
            model(inputs)
    except _Captured:
        pass
    finally:
        handle.remove()
    if not box:
        raise ValueError(f"the forward pass never called {type(module).__name__} layer")
    return box[0]


def _hessians(m: QuantLayer, x: torch.Tensor) -> List[np.ndarray]:
    """H = X^T X of the layer's input vectors as it multiplies them (its quantized input,
    dequantized), one per group; convolutions are unfolded CHUNK inputs at a time. Accumulated in
    float64 from the integer inputs (exact while the sums stay below 2^53, so symmetric to the bit)
    and then scaled by the input step squared; symmetrised at the end all the same."""
    xq, scale, _ = m.input_integers(x)
    if isinstance(m, nn.Linear):
        a = xq.reshape(-1, xq.shape[-1]).to(torch.float64)
        hs = [a.T @ a]
    else:
        g, cin = m.groups, xq.shape[1] // m.groups
        hs = [0.0] * g
        for c0 in range(0, xq.shape[0], CHUNK):
            for i in range(g):
                a = im2col(xq[c0:c0 + CHUNK, i * cin:(i + 1) * cin], m).to(torch.float64)
                hs[i] = hs[i] + a.T @ a
    s2 = float(scale) ** 2
    return [(0.5 * (h + h.T) * s2).numpy() for h in hs]


def _check_model(model: nn.Module) -> List[Tuple[str, QuantLayer]]:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLayer)]
    if not layers:
        raise ValueError("model has no hamqcore quantized layer: quantize it first "
                         "(hamqcore.quant.quantize_model) and train or calibrate it")
    for name, m in layers:
        if m.w_quant.mode == "max":
            raise ValueError(f"layer {name!r} uses weight_mode='max' (its step follows max|w|, so new integers "
                             "would move it): rounding needs weight_mode 'fixed' or 'lsq'")
    return layers


def _relative_error(w: torch.Tensor, s: torch.Tensor, q: torch.Tensor, hs: List[np.ndarray]) -> float:
    """||(W - s Q) X||^2 / ||W X||^2 summed over the groups, X^T X given per group as ``hs``."""
    out_g = w.shape[0] // len(hs)
    err = norm = 0.0
    for i, h in enumerate(hs):
        rows = slice(i * out_g, (i + 1) * out_g)
        ht = torch.from_numpy(h)
        e = w[rows] - s[rows, None] * q[rows].to(torch.float64)
        err += float(((e @ ht) * e).sum())
        norm += float(((w[rows] @ ht) * w[rows]).sum())
    return err / norm if norm > 0 else 0.0


def _round_layer(name: str, m: QuantLayer, hs: List[np.ndarray], cost: Optional[np.ndarray], lam: float, radius: int,
                 damp: float, encoding: str, target: str, n_threads: Optional[int],
                 hs_heldout: Optional[List[np.ndarray]] = None) -> Dict[str, float]:
    """Round one layer's weights in place (per group, with its Hessians ``hs``); its stats, with the
    relative errors on held-out inputs too when their Hessians ``hs_heldout`` are given."""
    q_old, s = m.weight_integers()
    s = s.reshape(-1).to(torch.float64)
    w = m.weight.detach().to(torch.float64).reshape(m.weight.shape[0], -1)
    if target == "quantized":       # the function the trained model computes: its own integers
        w = q_old.reshape(w.shape).to(torch.float64) * s[:, None]
    g = len(hs)
    out_g = w.shape[0] // g
    signal = sum(float(((w[i * out_g:(i + 1) * out_g] @ torch.from_numpy(h)) * w[i * out_g:(i + 1) * out_g]).sum())
                 for i, h in enumerate(hs))
    # relative output error against mean cost per weight (an all-zero signal: only the cost counts)
    row_weight = np.full(out_g, w.numel() / signal if signal > 0 else 0.0)
    q_new = torch.empty_like(q_old.reshape(w.shape[0], -1))
    hi = level_max(m.w_bits)
    err = {"before": 0.0, "after": 0.0, "nearest": 0.0}
    norm, dead = 0.0, 0
    for i, h in enumerate(hs):
        rows = slice(i * out_g, (i + 1) * out_g)
        qi, d = _core.hw_aware_round(w[rows].numpy(), h, s[rows].numpy(), row_weight, m.w_bits, encoding, lam,
                                     radius, damp, cost, n_threads)
        dead += d
        q_new[rows] = torch.from_numpy(qi.astype(np.int64))
        ht = torch.from_numpy(h)
        wr = w[rows]
        nearest = torch.round(wr / s[rows, None]).clamp(-hi, hi)
        for key, qq in (("before", q_old.reshape(w.shape[0], -1)[rows].to(torch.float64)),
                        ("after", q_new[rows].to(torch.float64)), ("nearest", nearest)):
            e = wr - s[rows, None] * qq
            err[key] += float(((e @ ht) * e).sum())
        norm += float(((wr @ ht) * wr).sum())
    with torch.no_grad():
        m.weight.copy_((q_new.to(torch.float64) * s[:, None]).reshape(m.weight.shape).to(m.weight.dtype))
    check, _ = m.weight_integers()
    assert torch.equal(check.reshape(q_new.shape), q_new), f"layer {name}: the stored integers moved"
    hw = lambda q: kernels.total_hamming_weight(q.cpu().numpy(), m.w_bits, encoding)  # noqa: E731
    return {
        "weights": int(q_new.numel()), "hw_before": hw(q_old), "hw_after": hw(q_new),
        "hw_nearest": kernels.total_hamming_weight(
            torch.round(w / s[:, None]).clamp(-hi, hi).to(torch.int64).numpy(), m.w_bits, encoding),
        **{f"error_{k}": (v / norm if norm > 0 else 0.0) for k, v in err.items()},
        **({} if hs_heldout is None else {
            "heldout_error_before": _relative_error(w, s, q_old.reshape(q_new.shape), hs_heldout),
            "heldout_error_after": _relative_error(w, s, q_new, hs_heldout)}),
        "dead_inputs": int(dead),
    }


def hw_aware_round(model: nn.Module, calib_inputs: torch.Tensor, lam: float = 0.01, bits: Optional[int] = None,
                   encoding: str = "differential", radius: int = 8, damp: float = 0.01,
                   crossbar: Optional[CrossbarConfig] = None, target: str = "quantized", inplace: bool = False,
                   n_threads: Optional[int] = None, holdout: float = 0.25) -> Tuple[nn.Module, Dict]:
    """HW-aware rounding of every quantized layer of ``model`` on ``calib_inputs`` (a batch the
    model accepts, e.g. a few hundred training inputs). Returns ``(rounded_model, stats)``;
    ``model`` is left untouched unless ``inplace``.

    ``bits``: if given, every layer must have that weight width (a check). ``radius``: candidate
    levels within this distance of the nearest (0: nearest only, GPTQ). ``damp``: GPTQ's damping,
    ``damp * mean(diag H)`` added to H's diagonal (a singular H, from too few or constant inputs, is
    then still invertible). ``crossbar``: price each bit by its energy under this configuration
    (:func:`hamqcore.energy.bit_prices` on the calibration inputs, in units of the model's mean price
    of an ON cell) instead of counting ON cells; its mapping must store ``encoding``'s code.
    ``target``: the weights W whose output is preserved: ``"quantized"`` (default) the model's own
    quantized weights s Q, the function a quantization-aware-trained model was trained to compute (so
    lam = 0 returns the model unchanged), or ``"float"`` its latent float weights (GPTQ's target when
    quantizing a float model; on a QAT model it moves away from what the later layers were trained on).

    ``stats`` per layer: ``hw_before`` / ``hw_after`` (total HW of the integers), ``hw_nearest`` (of
    plain nearest rounding of the same float weights), ``error_before`` / ``error_after`` /
    ``error_nearest`` (relative output error ||(W - sQ) X||^2 / ||W X||^2 on the calibration
    inputs, W the target weights), ``dead_inputs``; and ``"total"``. ``holdout``: the last fraction of
    ``calib_inputs`` is not used for calibration but held out: every layer then also reports
    ``heldout_error_before`` / ``heldout_error_after`` on it, and ``"total"`` the whole model's relative
    output change ``output_error_heldout`` = ||f_rounded(x) - f(x)||^2 / ||f(x)||^2 there (a small
    calibration error can hide a large held-out one). 0 disables it; too few inputs for one held-out
    example leave it out.
    """
    lam = check_nonneg("lam", lam)
    radius = check_int("radius", radius, 0)
    damp = check_nonneg("damp", damp)
    check_choice("encoding", encoding, kernels.ENCODINGS)
    check_choice("target", target, ("quantized", "float"))
    check_batch("calib_inputs", calib_inputs)
    if calib_inputs.dim() < 2:
        raise TypeError(f"calib_inputs must be a batch (N, ...) of at least 2 dimensions, got shape "
                        f"{tuple(calib_inputs.shape)}")
    holdout = check_nonneg("holdout", holdout)
    if holdout >= 1:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout!r}")
    given_shape = tuple(calib_inputs.shape)
    n_held = int(calib_inputs.shape[0] * holdout)
    heldout = calib_inputs[calib_inputs.shape[0] - n_held:] if n_held else None
    calib_inputs = calib_inputs[:calib_inputs.shape[0] - n_held]
    layers = _check_model(model)
    if bits is not None:
        for name, m in layers:
            if m.w_bits != bits:
                raise ValueError(f"bits={bits} but layer {name!r} has {m.w_bits}-bit weights")
    if crossbar is not None:
        check_encoding(check_config(crossbar, "crossbar"), encoding)
    # copied before anything runs: a forward pass initialises quantizers that never ran
    rounded = model if inplace else copy.deepcopy(model)
    try:
        order = [name for name, _, _ in capture_layer_inputs(rounded, calib_inputs[:1])]
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"calib_inputs of shape {given_shape} do not fit the model: {e}") from None
    reference = None
    if heldout is not None:
        with evaluating(rounded):
            reference = rounded(heldout).detach().to(torch.float64)

    modules = dict(rounded.named_modules())
    costs: Dict[str, Optional[np.ndarray]] = {}
    if crossbar is not None:
        prices = bit_prices(rounded, calib_inputs[:2], crossbar)
        unit = price_unit(rounded, prices, encoding)
        costs = {name: p / unit for name, p in prices.items()}

    stats: Dict[str, Dict[str, float]] = {}
    seen = set()
    for label in order:
        name = label.split("#")[0]
        if name in seen or not isinstance(modules.get(name), QuantLayer):
            continue
        seen.add(name)
        m = modules[name]
        hs_held = None if heldout is None else _hessians(m, _capture(rounded, m, heldout))
        stats[name] = _round_layer(name, m, _hessians(m, _capture(rounded, m, calib_inputs)), costs.get(name), lam,
                                   radius, damp, encoding, target, n_threads, hs_held)
    tot = {k: sum(st[k] for st in stats.values()) for k in ("weights", "hw_before", "hw_after", "hw_nearest")}
    cov = coverage(rounded).move(float_layers(rounded), "a float layer: only hamqcore quantized layers are rounded")
    cov.warn("hw_aware_round")
    if reference is not None:
        with evaluating(rounded):
            out = rounded(heldout).detach().to(torch.float64)
        ref_norm = float((reference ** 2).sum())
        tot["output_error_heldout"] = float(((out - reference) ** 2).sum()) / ref_norm if ref_norm > 0 else 0.0
        tot["heldout_inputs"] = int(heldout.shape[0])
    stats["total"] = {**tot, "lam": lam, "radius": radius, "damp": damp, "encoding": encoding, "coverage": cov.to_dict(),
                      "calibration_inputs": int(calib_inputs.shape[0]),
                      "hw_change_pct": 100.0 * (tot["hw_after"] - tot["hw_before"]) / tot["hw_before"]
                      if tot["hw_before"] else 0.0}
    return rounded, stats
