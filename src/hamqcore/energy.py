"""Crossbar energy of a whole torch model: capture every Conv1d/Conv2d/Linear input with forward
pre-hooks, quantize it and the weights (the layer's own quantizers for hamqcore layers), lay
convolutions out as matrices (im2col per group) and simulate each layer with
:func:`hamqcore.crossbar.simulate_layer` under one :class:`~hamqcore.crossbar.CrossbarConfig`.

    report = estimate_energy(model, x, CrossbarConfig.preset("neurosim-1.3"))
    print(report)            # per layer: arrays, ON %, currents, energy by component

The report names its accounting model and mapping; energies are per inference (totals over the
batch divided by its size).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import as_int, level_max as level_max_np
from .crossbar import (  # noqa: F401 (re-exported: hamqcore.energy.CrossbarConfig etc. keep working)
    DEFAULT_PRESET,
    ENERGY_COMPONENTS,
    MODEL_COMPONENTS,
    PRESETS,
    CrossbarConfig,
    LayerEnergy,
    simulate_layer,
)
from .kernels import level_codes as _level_codes
from .quant import QuantLayer, dry_run, layer_integers, quantizable_layers, quantize_activation


@dataclass
class LayerRow:
    """One layer of an :class:`EnergyReport`; energies and counts are per inference."""

    name: str
    kind: str
    shape: List[int]          # weight shape
    vectors: float            # input vectors per inference (output positions)
    arrays: int
    row_tiles: int
    col_tiles: int
    on_cells: int
    cells: int
    mean_current: float
    max_current: float
    conversions: float
    idle_conversions: float
    skipped_conversions: float
    subarray_reads: float
    skipped_reads: float
    read_cycles: float        # column-mux cycles run by the reads done
    skipped_cycles: float     # cycles of those reads not run (skip_empty)
    inverted_columns: int
    resolution_columns: List[int]   # physical columns (per conversion group) by ADC bits; [0] = skipped
    latency: float            # s per inference, arrays in parallel
    energy: Dict[str, float]

    @property
    def total_energy(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def on_fraction(self) -> float:
        return self.on_cells / self.cells if self.cells else 0.0


@dataclass
class EnergyReport:
    """Per-layer rows and totals per inference (averaged over the batch), under ``config``."""

    layers: List[LayerRow]
    batch: int
    config: CrossbarConfig
    w_bits: int
    a_bits: int
    floor: bool = False

    @property
    def model(self) -> str:
        """The accounting model (``config.model``)."""
        return self.config.model

    @property
    def mapping(self) -> str:
        return self.config.mapping

    @property
    def components(self) -> Tuple[str, ...]:
        return tuple(self.config.components)

    @property
    def energy(self) -> Dict[str, float]:
        return {c: float(sum(l.energy[c] for l in self.layers)) for c in self.components}

    @property
    def total_energy(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def on_fraction(self) -> float:
        cells = sum(l.cells for l in self.layers)
        return sum(l.on_cells for l in self.layers) / cells if cells else 0.0

    @property
    def mean_current(self) -> float:
        conv = sum(l.conversions for l in self.layers)
        return float(sum(l.mean_current * l.conversions for l in self.layers) / conv) if conv else 0.0

    @property
    def conversions(self) -> Dict[str, float]:
        """Conversions per inference: done, idle (no driven row) among them, and skipped (empty)."""
        return {"done": float(sum(l.conversions for l in self.layers)),
                "idle": float(sum(l.idle_conversions for l in self.layers)),
                "skipped": float(sum(l.skipped_conversions for l in self.layers))}

    @property
    def resolution_columns(self) -> List[int]:
        """Physical columns of all layers by ADC bits (index 0: skipped)."""
        return [int(sum(l.resolution_columns[i] for l in self.layers)) for i in range(17)]

    @property
    def latency(self) -> float:
        """Seconds per inference, layers one after another, arrays in parallel."""
        return float(sum(l.latency for l in self.layers))

    def to_dict(self) -> Dict[str, object]:
        return {
            "model": self.model, "mapping": self.mapping, "config": self.config.to_dict(), "w_bits": self.w_bits,
            "a_bits": self.a_bits, "batch": self.batch, "floor": self.floor, "total_energy_j": self.total_energy,
            "energy_j": self.energy, "on_fraction": self.on_fraction, "mean_current_a": self.mean_current,
            "latency_s": self.latency, "conversions": self.conversions, "resolution_columns": self.resolution_columns,
            "layers": [
                {**dataclasses.asdict(l), "on_fraction": l.on_fraction, "total_energy": l.total_energy}
                for l in self.layers
            ],
        }

    def to_json(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def to_csv(self, path) -> None:
        cols = ["name", "kind", "shape", "vectors", "arrays", "row_tiles", "col_tiles", "on_fraction", "mean_current",
                "max_current", "conversions", "idle_conversions", "latency", *[f"e_{c}" for c in self.components],
                "e_total"]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for l in self.layers:
                w.writerow([l.name, l.kind, "x".join(map(str, l.shape)), l.vectors, l.arrays, l.row_tiles, l.col_tiles,
                            l.on_fraction, l.mean_current, l.max_current, l.conversions, l.idle_conversions, l.latency,
                            *[l.energy[c] for c in self.components], l.total_energy])

    def plot(self, path, title: Optional[str] = None) -> None:
        """Stacked bars of energy per layer and component (deprecated: use
        :func:`hamqcore.plots.energy_report`)."""
        warnings.warn("EnergyReport.plot is deprecated; use hamqcore.plots.energy_report(report, path)",
                      DeprecationWarning, stacklevel=2)
        from .plots import energy_report

        energy_report(self, path, title)

    def __str__(self) -> str:
        comps = self.components
        head = (f"{'layer':<28} {'weight':>16} {'arrays':>6} {'ON %':>6} {'I mean uA':>9} "
                + " ".join(f"{c + ' nJ':>15}" for c in comps) + f" {'total nJ':>10}")
        lines = [f"accounting model {self.config.describe()}" + (" (floor: every cell OFF)" if self.floor else ""),
                 head, "-" * len(head)]
        for l in self.layers:
            lines.append(
                f"{l.name[:28]:<28} {'x'.join(map(str, l.shape)):>16} {l.arrays:>6} {100 * l.on_fraction:>6.2f} "
                f"{l.mean_current * 1e6:>9.3f} " + " ".join(f"{l.energy[c] * 1e9:>15.4f}" for c in comps)
                + f" {l.total_energy * 1e9:>10.4f}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'total per inference':<28} {'':>16} {sum(l.arrays for l in self.layers):>6} "
            f"{100 * self.on_fraction:>6.2f} {self.mean_current * 1e6:>9.3f} "
            + " ".join(f"{self.energy[c] * 1e9:>15.4f}" for c in comps) + f" {self.total_energy * 1e9:>10.4f}"
        )
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# The model walk
# ------------------------------------------------------------------------------------------------


def capture_layer_inputs(model: nn.Module, inputs, layers: Optional[Sequence[str]] = None):
    """Run ``model(inputs)`` once (eval, no grad); return [(name, module, input tensor)] in call
    order. A module called several times appears once per call (``name#2``, ...)."""
    chosen = quantizable_layers(model, include=layers)
    captured: List[Tuple[str, nn.Module, torch.Tensor]] = []
    seen: Dict[str, int] = {}

    def pre_hook(name):
        def fn(module, args):
            seen[name] = seen.get(name, 0) + 1
            label = name if seen[name] == 1 else f"{name}#{seen[name]}"
            captured.append((label, module, args[0].detach()))
        return fn

    dry_run(model, inputs, [m.register_forward_pre_hook(pre_hook(n)) for n, m in chosen])
    return captured


def _conv_padding(m: nn.Module, x: torch.Tensor, kernel, dilation, padding):
    """x padded as the conv pads it (any padding mode, 'same' and 'valid' included); returns
    (x, the padding left for F.unfold, always zeros-mode)."""
    if isinstance(padding, str):  # 'same' / 'valid'
        if padding == "valid":
            return x, (0, 0)
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        pad = (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
        mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
        return F.pad(x, pad, mode=mode), (0, 0)
    if m.padding_mode != "zeros" and any(padding):
        return F.pad(x, (padding[1], padding[1], padding[0], padding[0]), mode=m.padding_mode), (0, 0)
    return x, padding


def _im2col(x: torch.Tensor, m: nn.Module) -> torch.Tensor:
    """(N, C, *spatial) integer-valued input -> (N * positions, C * prod(kernel)) for one group."""
    x = x.to(torch.float32)  # exact: |values| < 2^24
    if isinstance(m, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, stride, dilation = (1, m.kernel_size[0]), (1, m.stride[0]), (1, m.dilation[0])
        padding = (0, m.padding[0]) if not isinstance(m.padding, str) else m.padding
    else:
        kernel, stride, dilation, padding = m.kernel_size, m.stride, m.dilation, m.padding
    x, padding = _conv_padding(m, x, kernel, dilation, padding)
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # (N, C*k, L)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def layer_matrices(m: nn.Module, x: torch.Tensor, w_bits: int, a_bits: int, name: str = ""):
    """Integer weights and input matrices of one layer, per group:
    (w_groups, x_groups, w_bits, a_bits, a_signed, groups)."""
    w_int, wb = layer_integers(m, w_bits, name)
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        raise ValueError(f"layer {name!r}: its input holds NaN or inf (the model's activations diverged)")
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


def _merge(parts: List[LayerEnergy]) -> LayerEnergy:
    """The groups of one grouped convolution, mapped to separate arrays: energies and counts add,
    the outputs sit side by side in group order."""
    if len(parts) == 1:
        return parts[0]
    conv = sum(p.conversions for p in parts)
    first = parts[0]
    return LayerEnergy(
        energy={k: sum(p.energy[k] for p in parts) for k in first.energy}, model=first.model, mapping=first.mapping,
        on_cells=sum(p.on_cells for p in parts), cells=sum(p.cells for p in parts),
        mean_current=sum(p.mean_current * p.conversions for p in parts) / conv if conv else 0.0,
        max_current=max(p.max_current for p in parts), conversions=conv,
        idle_conversions=sum(p.idle_conversions for p in parts),
        skipped_conversions=sum(p.skipped_conversions for p in parts),
        subarray_reads=sum(p.subarray_reads for p in parts), skipped_reads=sum(p.skipped_reads for p in parts),
        read_cycles=sum(p.read_cycles for p in parts), skipped_cycles=sum(p.skipped_cycles for p in parts),
        inverted_columns=sum(p.inverted_columns for p in parts),
        resolution_columns=sum(p.resolution_columns for p in parts),
        driven_rows=sum(p.driven_rows for p in parts), arrays=sum(p.arrays for p in parts),
        row_tiles=sum(p.row_tiles for p in parts), col_tiles=sum(p.col_tiles for p in parts),
        latency=max(p.latency for p in parts),  # the groups' arrays run in parallel
        n_vectors=first.n_vectors,
        output=None if first.output is None else np.concatenate([p.output for p in parts], axis=1),
    )


def simulate_module(m: nn.Module, x: torch.Tensor, config: CrossbarConfig, w_bits: int = 8, a_bits: int = 8,
                    n_threads: Optional[int] = None, floor: bool = False, name: str = "",
                    output: bool = True) -> LayerEnergy:
    """One Conv1d/Conv2d/Linear layer on its input ``x``: every group simulated and merged; the
    output (unless ``output=False``) is the layer's integer pre-activation as the crossbar computes
    it, (N * positions) x out_channels."""
    w_groups, x_groups, wb, ab, signed, _ = layer_matrices(m, x, w_bits, a_bits, name)
    return _merge([simulate_layer(w, xg, config, wb, ab, a_signed=signed, n_threads=n_threads, floor=floor,
                                  output=output) for w, xg in zip(w_groups, x_groups)])


def estimate_energy(
    model, inputs, config: Optional[CrossbarConfig] = None, w_bits: int = 8, a_bits: int = 8,
    n_threads: Optional[int] = None, layers: Optional[Sequence[str]] = None, floor: bool = False,
    zero_weights: Optional[bool] = None,
) -> EnergyReport:
    """Run ``model(inputs)`` once and simulate every Conv1d/Conv2d/Linear on the crossbar.

    Each layer's weights and inputs are quantised by the layer's own quantizers when it is a
    hamqcore quantized layer (:mod:`hamqcore.quant`), else symmetric per-output-channel weights
    (``w_bits``) and per-tensor activations (``a_bits``; unsigned when the layer input is
    non-negative). Energies are per inference: totals over the batch divided by its size.

    ``floor=True`` simulates the same layer inputs with every cell at its lowest conductance: the
    least energy any stored weights could give under this configuration (under the offset mapping a
    stored 0 is not that: its code 2^(b-1) has ON cells). ``zero_weights`` is its deprecated name.
    """
    if zero_weights is not None:
        warnings.warn("estimate_energy(zero_weights=...) is deprecated; use floor=...", DeprecationWarning,
                      stacklevel=2)
        floor = bool(zero_weights)
    config = config if config is not None else PRESETS[DEFAULT_PRESET]
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    w_bits, a_bits = as_int("w_bits", w_bits), as_int("a_bits", a_bits)
    captured = capture_layer_inputs(model, inputs, layers)
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else 1
    rows = []
    for name, module, x in captured:
        r = simulate_module(module, x, config, w_bits, a_bits, n_threads, floor, name, output=False)
        rows.append(LayerRow(
            name=name, kind=type(module).__name__, shape=list(module.weight.shape), vectors=r.n_vectors / batch,
            arrays=r.arrays, row_tiles=r.row_tiles, col_tiles=r.col_tiles, on_cells=r.on_cells, cells=r.cells,
            mean_current=r.mean_current, max_current=r.max_current, conversions=r.conversions / batch,
            idle_conversions=r.idle_conversions / batch, skipped_conversions=r.skipped_conversions / batch,
            subarray_reads=r.subarray_reads / batch, skipped_reads=r.skipped_reads / batch,
            read_cycles=r.read_cycles / batch, skipped_cycles=r.skipped_cycles / batch,
            inverted_columns=r.inverted_columns, resolution_columns=[int(v) for v in r.resolution_columns],
            latency=r.latency / batch,
            energy={k: v / batch for k, v in r.energy.items()},
        ))
    if not rows:
        raise ValueError("model has no Conv1d, Conv2d or Linear layer to map onto the crossbar")
    return EnergyReport(layers=rows, batch=batch, config=config, w_bits=w_bits, a_bits=a_bits, floor=bool(floor))


def crossbar_forward(model: nn.Module, inputs: torch.Tensor, config: CrossbarConfig,
                     n_threads: Optional[int] = None) -> torch.Tensor:
    """``model(inputs)`` (eval, no grad) with every hamqcore quantized layer computed on the crossbar:
    its output is ``config``'s functional output (the shift-added ADC readings of the layer's integer
    inputs and weights, :func:`simulate_module`) times the layer's input and weight steps, plus its
    bias. With a lossless ADC this is the digital model's output up to float rounding; a sense amp too
    coarse for its column sums (NeuroSim's default 32 levels for 128 rows of 2-bit cells, or
    ``rows_per_conversion``) clips them, and that shows in the result. Other layers run as usual."""
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")

    def hook(m, args, out):
        x = args[0]
        r = simulate_module(m, x, config, n_threads=n_threads, output=True)
        _, sx, _ = m.input_integers(x)
        _, sw = m.weight_integers()
        y = torch.from_numpy(np.asarray(r.output, np.float64)) * float(sx) * sw.reshape(1, -1).to(torch.float64)
        if isinstance(m, nn.Linear):
            y = y.reshape(out.shape)
        else:  # (N * positions, C) -> (N, C, *spatial)
            y = y.reshape(out.shape[0], -1, out.shape[1]).transpose(1, 2).reshape(out.shape)
        if m.bias is not None:
            y = y + m.bias.detach().to(torch.float64).reshape((1, -1) + (1,) * (out.dim() - 2))
        return y.to(out.dtype)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, QuantLayer)]
    if not handles:
        raise ValueError("model has no hamqcore quantized layer (hamqcore.quant.quantize_model)")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            return model(inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


# The penalty encoding whose code each crossbar mapping stores, one code bit per cell bit.
ENCODING_OF_MAPPING = {"differential": "differential", "offset": "offset", "twos_complement": "twos_complement"}


def _place_values(q: np.ndarray, bits: int, mapping: str) -> np.ndarray:
    """What a 1 at each bit p of the stored code adds to the level q, shape (bits, *q.shape): 2^p
    for the offset code, 2^p (-2^(b-1) for the sign bit) for two's complement, sign(q) 2^p for the
    differential mapping's magnitude code (+2^p for q = 0); a standard property of each code."""
    p = (1 << np.arange(bits, dtype=np.int64)).reshape(-1, *([1] * q.ndim))
    if mapping == "differential":
        return p * np.where(q < 0, -1, 1)
    if mapping == "twos_complement":
        p = p.copy()
        p[bits - 1] = -p[bits - 1]
    return np.broadcast_to(p, (bits, *q.shape))


def bit_prices(model: nn.Module, inputs, config: CrossbarConfig, w_bits: int = 8, a_bits: int = 8,
               n_threads: Optional[int] = None, probe_every: int = 64) -> Dict[str, np.ndarray]:
    """The crossbar energy of one ON cell at each bit of each layer's stored code (J per inference,
    LSB first; keys: the layers' names), measured in the simulator under ``config`` on ``inputs``.

    For bit p of a layer: ``(E - E_without) / n_p``, where ``E_without`` is the layer's energy with
    bit p cleared in all of its n_p weights that have it (the average energy an ON cell there costs,
    including the conversions and array reads it keeps alive); when no weight has bit p, the energy
    added by setting it in every ``probe_every``-th weight, per cell set (the price of reopening the
    position). Bits a mapping never stores (the differential code's sign position) cost 0. Each price
    is >= 0 (an ablation that saves nothing prices 0). Energies are per inference; a module called
    several times sums its calls. Layers are quantized as in :func:`estimate_energy`."""
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    probe_every = as_int("probe_every", probe_every)
    if probe_every < 1:
        raise ValueError(f"probe_every must be >= 1, got {probe_every}")
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else 1
    prices: Dict[str, np.ndarray] = {}
    for label, module, x in capture_layer_inputs(model, inputs):
        name = label.split("#")[0]
        w_groups, x_groups, wb, ab, signed, _ = layer_matrices(module, x, w_bits, a_bits, name)

        def energy(ws) -> float:
            return sum(simulate_layer(w, xg, config, wb, ab, a_signed=signed, n_threads=n_threads,
                                      output=False).total_energy for w, xg in zip(ws, x_groups))

        q = np.concatenate([w.reshape(-1) for w in w_groups]).astype(np.int64)
        codes = np.asarray(np.take(_level_codes(wb, config.mapping), q + level_max_np(wb)), dtype=np.int64)
        places = _place_values(q, wb, config.mapping)
        stored = wb - 1 if config.mapping == "differential" else wb
        base = energy(w_groups)
        price = np.zeros(wb)
        for p in range(stored):
            has = ((codes >> p) & 1).astype(bool)
            if has.any():
                moved, count, sign = np.where(has, q - places[p], q), int(has.sum()), 1.0
            else:
                probe = np.zeros(q.shape, dtype=bool)
                probe[::probe_every] = True
                moved, count, sign = np.where(probe, q + places[p], q), int(probe.sum()), -1.0
            split = np.split(moved, np.cumsum([w.size for w in w_groups])[:-1])
            changed = energy([m.reshape(w.shape).astype(w.dtype) for m, w in zip(split, w_groups)])
            price[p] = max(0.0, sign * (base - changed) / count / batch)
        prices[name] = prices.get(name, 0.0) + price
    return prices


def energy_reduction(baseline: float, other: float) -> float:
    """Percentage change from baseline to other (negative = saving)."""
    return 100.0 * (other - baseline) / baseline if baseline else math.nan
