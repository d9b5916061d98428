"""Torch helpers of :func:`hamqcore.energy.estimate_energy`: capture each layer's input with forward
pre-hooks, quantize it and the weights (the layer's own quantizers for hamqcore layers), and lay
convolutions out as matrices (im2col per group) for the crossbar."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .nn import dry_run, layer_integers, quantizable_layers
from .quant import QuantLayer, quantize_activation


def capture_layer_inputs(model: nn.Module, inputs, layers: Optional[Sequence[str]] = None):
    """Run ``model(inputs)`` once (eval, no grad); return [(name, module, input tensor)] in call
    order. A module called several times appears once per call (``name#2``, ...)."""
    chosen = quantizable_layers(model, include=layers)
    captured: List[Tuple[str, nn.Module, torch.Tensor]] = []
    seen = {}

    def pre_hook(name):
        def fn(module, args):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            captured.append((label, module, args[0].detach()))
        return fn

    dry_run(model, inputs, [m.register_forward_pre_hook(pre_hook(n)) for n, m in chosen])
    return captured


def _im2col(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
    """(N, C, *spatial) integer-valued input -> (N * positions, C * prod(kernel)) for one group."""
    x = x.to(torch.float32)  # exact: |values| < 2^24
    if isinstance(m, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, stride, dilation = (1, m.kernel_size[0]), (1, m.stride[0]), (1, m.dilation[0])
        padding = (0, m.padding[0]) if not isinstance(m.padding, str) else m.padding
    else:
        kernel, stride, dilation, padding = m.kernel_size, m.stride, m.dilation, m.padding
    if isinstance(padding, str):  # 'same' / 'valid'
        if padding == "valid":
            padding = (0, 0)
        else:
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            x = F.pad(x, (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2))
            padding = (0, 0)
    if m.padding_mode != "zeros" and any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), mode=m.padding_mode)
        padding = (0, 0)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (N, C*k, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def layer_matrices(m: nn.Module, x: torch.Tensor, w_bits: int, a_bits: int):
    """Integer weights and input matrices of one layer, per group:
    (w_groups, x_groups, w_bits, a_bits, a_signed, groups)."""
    w_int, wb = layer_integers(m, w_bits)
    if isinstance(m, QuantLayer):
        xq, _, signed = m.input_integers(x)
        ab = m.a_bits
    else:
        xq, _, signed = quantize_activation(x, a_bits)
        ab = a_bits
    x_dtype = np.int16 if ab <= 15 else np.int32
    if isinstance(m, nn.Linear):
        return [w_int], [xq.reshape(-1, xq.shape[-1]).cpu().numpy().astype(x_dtype)], wb, ab, signed, 1
    g = m.groups
    cin = xq.shape[1] // g
    out = w_int.shape[0] // g
    w_groups, x_groups = [], []
    for i in range(g):
        w_groups.append(np.ascontiguousarray(w_int[i * out:(i + 1) * out].reshape(out, -1)))
        cols = _im2col(xq[:, i * cin:(i + 1) * cin], m)
        x_groups.append(cols.to(torch.int32).cpu().numpy().astype(x_dtype))
    return w_groups, x_groups, wb, ab, signed, g

