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
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ._checks import MAX_BITS, as_int, as_str, check_choice
from .chip import CHIP_COMPONENTS, CHIP_GROUPS, ChipLayer, Floorplan, chip_energy
from .crossbar import (DEFAULT_PRESET, PRESETS, CrossbarConfig, LayerEnergy, check_config, conversion_histograms,
                       core_reads, digit_columns, pack_groups, result_field, simulate_groups, unpack_output)
from .layers import (Coverage, capture_layer_inputs, check_batch, coverage, dry_run, float_layers,
                     is_quantized, layer_matrices, layer_steps, quantizable_layers, walk_coverage)
from .quant import input_value, is_linear, is_torch_ao_layer, layer_bias, torch_ao_output, weight_shape
from .readout import HIST_BINS_PER_UNIT, Histograms, read_layer


@dataclass
class LayerRow(LayerEnergy):
    """One layer of an :class:`EnergyReport`: its simulation with energies and counts per inference
    (:meth:`LayerEnergy.per_inference`), plus what the layer is."""

    name: str = result_field("first", False, core=False, default="")
    kind: str = result_field("first", False, core=False, default="")
    shape: List[int] = result_field("first", False, core=False, default_factory=list)   # weight shape
    vectors: float = result_field("sum", True, core=False, default=0.0)                 # input vectors per inference
    w_bits: int = result_field("first", False, core=False, default=0)   # the bits the layer stores: its own
    a_bits: int = result_field("first", False, core=False, default=0)   # quantizer's, or the report's default


@dataclass
class EnergyReport:
    """Per-layer rows and totals per inference (averaged over the batch), under ``config``; with
    ``scope="chip"`` every row's energy also holds the chip's components (:mod:`hamqcore.chip`) and
    ``floorplan`` is NeuroSim's floorplan of the network."""

    layers: List[LayerRow]
    batch: int
    config: CrossbarConfig
    w_bits: int
    a_bits: int
    floor: bool = False
    coverage: Optional[Coverage] = None    # which weight tensors were mapped, and why the others were not
    scope: str = "subarray"
    floorplan: Optional[Floorplan] = None

    @property
    def model(self) -> str:
        """The accounting model (``config.model``)."""
        return self.config.model

    @property
    def mapping(self) -> str:
        return self.config.mapping

    @property
    def components(self) -> Tuple[str, ...]:
        return tuple(self.config.components) + (CHIP_COMPONENTS if self.scope == "chip" else ())

    @property
    def component_lines(self) -> List[Tuple[str, Tuple[str, ...]]]:
        """(label, components) of each line the report shows: the subarray's components one by one, the
        chip's (``scope="chip"``) summed into NeuroSim's report lines ("chip buffer", ...)."""
        lines = [(c, (c,)) for c in self.config.components]
        if self.scope == "chip":
            lines += [(f"chip {g}", members) for g, members in CHIP_GROUPS.items()]
        return lines

    @property
    def subarray_energy(self) -> float:
        """The subarrays' energy per inference (every component but the chip's)."""
        return float(sum(v for c, v in self.energy.items() if c not in CHIP_COMPONENTS))

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
        return [int(sum(l.resolution_columns[i] for l in self.layers)) for i in range(MAX_BITS + 1)]

    @property
    def latency(self) -> float:
        """Seconds per inference, layers one after another, arrays in parallel."""
        return float(sum(l.latency for l in self.layers))

    def to_dict(self) -> Dict[str, object]:
        return {
            "model": self.model, "mapping": self.mapping, "config": self.config.to_dict(), "scope": self.scope,
            "floorplan": None if self.floorplan is None else dataclasses.asdict(self.floorplan), "w_bits": self.w_bits,
            "a_bits": self.a_bits, "batch": self.batch, "floor": self.floor, "total_energy_j": self.total_energy,
            "energy_j": self.energy, "on_fraction": self.on_fraction, "mean_current_a": self.mean_current,
            "latency_s": self.latency, "conversions": self.conversions, "resolution_columns": self.resolution_columns,
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "layers": [
                {**{k: v for k, v in dataclasses.asdict(l).items() if k != "output"},
                 "resolution_columns": [int(v) for v in l.resolution_columns],
                 "on_fraction": l.on_fraction, "total_energy": l.total_energy, "utilization": l.utilization}
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

    def __str__(self) -> str:
        comps = self.component_lines
        head = (f"{'layer':<28} {'weight':>16} {'w/a':>5} {'arrays':>6} {'used %':>6} {'ON %':>6} {'I mean uA':>9} "
                + " ".join(f"{c + ' nJ':>15}" for c, _ in comps) + f" {'total nJ':>10}")
        scope = (f"; chip scope: NeuroSim's {self.floorplan.tile}x{self.floorplan.tile} tiles of "
                 f"{self.floorplan.pe}x{self.floorplan.pe} PEs" if self.scope == "chip" else "")
        lines = [f"accounting model {self.config.describe()}" + (" (floor: every cell OFF)" if self.floor else "")
                 + scope, head, "-" * len(head)]
        for l in self.layers:
            lines.append(
                f"{l.name[:28]:<28} {'x'.join(map(str, l.shape)):>16} {f'{l.w_bits}/{l.a_bits}':>5} {l.arrays:>6} {100 * l.utilization:>6.2f} "
                f"{100 * l.on_fraction:>6.2f} "
                f"{l.mean_current * 1e6:>9.3f} " + " ".join(f"{sum(l.energy[m] for m in ms) * 1e9:>15.4f}"
                                                            for _, ms in comps)
                + f" {l.total_energy * 1e9:>10.4f}"
            )
        lines.append("-" * len(head))
        energy = self.energy
        lines.append(
            f"{'total per inference':<28} {'':>16} {'':>5} {sum(l.arrays for l in self.layers):>6} {'':>6} "
            f"{100 * self.on_fraction:>6.2f} {self.mean_current * 1e6:>9.3f} "
            + " ".join(f"{sum(energy[m] for m in ms) * 1e9:>15.4f}" for _, ms in comps)
            + f" {self.total_energy * 1e9:>10.4f}"
        )
        return "\n".join(lines)


def simulate_module(m: nn.Module, x: torch.Tensor, config: CrossbarConfig, w_bits: int = 8, a_bits: int = 8,
                    n_threads: Optional[int] = None, floor: bool = False, name: str = "",
                    output: bool = True) -> LayerEnergy:
    """One Conv1d/Conv2d/Linear layer on its input ``x``: every group simulated and merged; the
    output (unless ``output=False``) is the layer's integer pre-activation as the crossbar computes
    it, (N * positions) x out_channels."""
    w_groups, x_groups, wb, ab, signed, _ = layer_matrices(m, x, w_bits, a_bits, name)
    return simulate_groups(w_groups, x_groups, config, wb, ab, signed, n_threads=n_threads, floor=floor,
                           output=output, name=name)


SCOPES = ("subarray", "chip")


def estimate_energy(
    model: nn.Module, inputs: torch.Tensor, config: Optional[CrossbarConfig] = None, w_bits: int = 8,
    a_bits: int = 8, n_threads: Optional[int] = None, layers: Optional[Sequence[str]] = None, floor: bool = False,
    scope: str = "subarray",
) -> EnergyReport:
    """Run ``model(inputs)`` once and simulate every Conv1d/Conv2d/Linear on the crossbar.

    Each layer's weights and inputs are quantised by the layer's own quantizers when it is a
    hamqcore quantized layer (:mod:`hamqcore.quant`) or another library's (Brevitas: its own integers
    and widths, :func:`hamqcore.quant.library_weight_quant`), else symmetric per-output-channel weights
    (``w_bits``) and per-tensor activations (``a_bits``; unsigned when the layer input is
    non-negative); each row gives the widths its layer stores. Energies are per inference: totals over the batch divided by its size.

    ``floor=True`` simulates the same layer inputs with every cell at its lowest conductance: the
    least energy any stored weights could give under this configuration (under the offset mapping a
    stored 0 is not that: its code 2^(b-1) has ON cells).

    ``scope="chip"`` adds the chip around the subarrays as DNN+NeuroSim V1.3 charges it (its
    buffers, buses and H-trees, adder trees and activation units: :mod:`hamqcore.chip`, golden-tested
    against its chip report) to every layer, under the ``"neurosim-1.3"`` model at its array and
    sense-amp defaults, one weight and one input width for the whole network (NeuroSim's synapse and
    input precision); anything else is refused with the reason. A layer whose output a max
    pooling (a module, functional or an exported program's op) pools before the next mapped layer runs
    gets NeuroSim's pooling unit.
    """
    scope = check_choice("scope", as_str("scope", scope), SCOPES)
    config = check_config(config if config is not None else PRESETS[DEFAULT_PRESET])
    if scope == "chip":
        _check_chip_config(config)
    w_bits, a_bits = as_int("w_bits", w_bits), as_int("a_bits", a_bits)
    batch = int(check_batch("inputs", inputs).shape[0])
    rows, chip_layers, pooled = [], [], []
    captured = capture_layer_inputs(model, inputs, layers, pooled=pooled if scope == "chip" else None)
    cov = walk_coverage(model, captured, layers).warn("estimate_energy")
    for name, module, x in captured:
        w_groups, x_groups, wb, ab, signed, _ = layer_matrices(module, x, w_bits, a_bits, name)
        r = simulate_groups(w_groups, x_groups, config, wb, ab, signed, n_threads=n_threads, floor=floor,
                            output=False, name=name.split("#")[0])
        shape = list(weight_shape(module))
        rows.append(LayerRow(name=name, kind=type(module).__name__, shape=shape,
                             vectors=r.n_vectors / batch, w_bits=wb, a_bits=ab, **r.per_inference(batch)))
        if scope == "chip":   # as NeuroSim's network file has it: inputs over all groups, outputs, positions
            chip_layers.append((int(np.prod(shape[1:])) * len(w_groups), shape[0], x_groups[0].shape[0] / batch))
    if not rows:
        raise ValueError("model has no Conv1d, Conv2d or Linear layer to map onto the crossbar")
    plan = None
    if scope == "chip":
        plan = _add_chip(rows, chip_layers, pooled, config)
    return EnergyReport(layers=rows, batch=batch, config=config, w_bits=w_bits, a_bits=a_bits, floor=bool(floor),
                        coverage=cov, scope=scope, floorplan=plan)


def _check_chip_config(config: CrossbarConfig) -> None:
    """The configurations whose chip hamqcore.chip reproduces: NeuroSim V1.3's own array and sense amp."""
    base = PRESETS["neurosim-1.3"]
    if config.model != "neurosim-1.3":
        raise ValueError(f"scope='chip' is NeuroSim V1.3's chip: it needs model='neurosim-1.3', got {config.model!r}")
    for f in ("rows", "cols", "cols_per_adc", "adc", "adc_bits"):
        if getattr(config, f) != getattr(base, f):
            raise ValueError(f"scope='chip' reproduces NeuroSim's chip at its {f}={getattr(base, f)!r} (its buffers, "
                             f"adder trees and wires are sized for it), got {f}={getattr(config, f)!r}")


def _add_chip(rows: List[LayerRow], chip_layers, pooled: List[bool], config: CrossbarConfig) -> Floorplan:
    """Every row's energy plus its chip components (hamqcore.chip); NeuroSim's floorplan."""
    widths = sorted({(r.w_bits, r.a_bits) for r in rows})
    if len(widths) > 1:
        raise ValueError(f"scope='chip' maps one network precision (NeuroSim's synapse and input bits); the layers "
                         f"store (weight, input) bits {widths}")
    wb, ab = widths[0]
    layers = []
    for r, (k, out, vectors), pool in zip(rows, chip_layers, pooled):
        if vectors != int(vectors):
            raise ValueError(f"scope='chip': layer {r.name!r} reads {vectors} input vectors per inference, not a whole "
                             "number (inputs of different sizes in one batch?)")
        layers.append(ChipLayer(k, out, int(vectors), pool))
    plan, energies = chip_energy(layers, config.cell_bits, digit_columns(config, wb), ab, config.roadmap)
    for r, e in zip(rows, energies):
        r.energy.update(e)
    return plan


def read_module(m: nn.Module, x: torch.Tensor, config: CrossbarConfig, name: str = "",
                references: Optional["AdcReferences"] = None, histograms: Optional[Histograms] = None,
                n_threads: Optional[int] = None) -> np.ndarray:
    """What the crossbar reads for one quantized layer on its input ``x``: its integer pre-activation,
    (N * positions) x out_channels (:mod:`hamqcore.readout`, or the C++ core's fast path where it reads
    the same: :func:`hamqcore.crossbar.core_reads`); a grouped convolution's groups packed as ``config``
    says (:func:`hamqcore.crossbar.pack_groups`)."""
    layer_refs = None
    if config.adc_reference == "calibrated" and histograms is None:
        layer_refs = check_references(references, config).layer(name)
    w_groups, x_groups, wb, ab, signed, _ = layer_matrices(m, x, 8, 8, name)
    if core_reads(config) and histograms is not None:     # calibration from the C++ core's popcounts
        for w, xg, _ in pack_groups(w_groups, x_groups, config, wb):
            counts, vs, ss = conversion_histograms(w, xg, config, wb, ab, signed, HIST_BINS_PER_UNIT, n_threads)
            for key in np.ndindex(*vs.shape):     # (array type, digit position)
                histograms.add_counts(key, counts[key])
                histograms.add_sums(key, vs[key], ss[key])
        return np.zeros((x_groups[0].shape[0], sum(int(w.shape[0]) for w in w_groups)))
    if core_reads(config):
        fs = gain = None
        if layer_refs is not None:
            keys = sorted(layer_refs)                         # (array, digit) order: arrays x digits
            fs = [layer_refs[k][0] for k in keys]
            gain = [layer_refs[k][1] for k in keys] if config.readout == "conductance" else None
        return np.asarray(simulate_groups(w_groups, x_groups, config, wb, ab, signed, n_threads=n_threads,
                                          digit_full_scale=fs, digit_gain=gain, energy=False).output)
    outs = [unpack_output(read_layer(w, xg, config, wb, ab, signed, key=f"{name}/{members[0]}", references=layer_refs,
                                     histograms=histograms), xg, members, config, wb)
            for w, xg, members in pack_groups(w_groups, x_groups, config, wb)]
    return np.concatenate(outs, axis=1)


@dataclass
class AdcReferences:
    """The calibrated ADC references of a model (``adc_reference="calibrated"``): per layer, per (array
    type, digit position), the full scale (digit units of current) and the digital gain that turns a
    reading into digit units (least squares against the ideal digit sums; 1 for ideal digits); fixed
    once chosen, like a chip's programmed references and its gain calibration.
    ``config``: the configuration they were calibrated for; ``vectors``: conversions' inputs seen."""

    full_scale: Dict[str, Dict[Tuple[int, int], float]]
    config: CrossbarConfig
    inputs: int

    def layer(self, name: str) -> Dict[Tuple[int, int], float]:
        if name not in self.full_scale:
            raise ValueError(f"the ADC references hold no layer {name!r} (calibrated on another model?)")
        return self.full_scale[name]


def check_references(references, config: CrossbarConfig) -> AdcReferences:
    """``references`` when they were calibrated for ``config``'s cells and ADC, else a clear error."""
    if references is None:
        raise ValueError("adc_reference='calibrated' needs references: "
                         "refs = hamqcore.energy.calibrate_adc(model, calibration_inputs, config), "
                         "then pass references=refs")
    if not isinstance(references, AdcReferences):
        raise TypeError(f"references must be AdcReferences (calibrate_adc), got {type(references).__name__}")
    same = dataclasses.replace(references.config, seed=config.seed)
    if same != config:
        raise ValueError("references were calibrated for another configuration "
                         f"({references.config.describe()}), not {config.describe()}")
    return references


def calibrate_adc(model: nn.Module, inputs: torch.Tensor, config: CrossbarConfig) -> AdcReferences:
    """Choose the ADC full scale of every quantized layer, array type and digit position on a
    calibration batch ``inputs`` (never the test set): the MSE-optimal clipping point of the
    conversions' inputs (:func:`hamqcore.readout.mse_full_scale`) and the least-squares gain from
    readings to ideal digit sums (the cells' nonlinearity, e.g. the access transistor's), the layers run as the crossbar
    computes them with those references (so each layer is calibrated on the inputs it will see).
    ``config.adc_reference`` must be ``"calibrated"``."""
    check_config(config)
    if config.adc_reference != "calibrated":
        raise ValueError(f"calibrate_adc needs adc_reference='calibrated', got {config.adc_reference!r}")
    check_batch("inputs", inputs)
    refs = AdcReferences(full_scale={}, config=config, inputs=int(inputs.shape[0]))
    names = _quantized_layers(model)
    levels = 1 << config.adc_bits

    def hook(m, args, out):
        x, name = args[0], names[m]
        hist = Histograms()
        read_module(m, x, config, name, histograms=hist)
        refs.full_scale[name] = hist.references(levels)
        return _crossbar_output(m, x, out, read_module(m, x, config, name, references=refs))

    dry_run(model, inputs, [m.register_forward_hook(hook) for m in names])
    return refs


def _quantized_layers(model: nn.Module) -> Dict[nn.Module, str]:
    """The model's quantized layers (hamqcore's or another library's: :func:`hamqcore.layers.is_quantized`)
    and their names, or a ValueError when it has none."""
    names = {m: n for n, m in quantizable_layers(model) if is_quantized(m)}
    if not names:
        raise ValueError("model has no quantized layer (hamqcore.quant.quantize_model, or a Brevitas layer with "
                         "weight quantization)")
    return names


def _crossbar_output(m: nn.Module, x: torch.Tensor, out: torch.Tensor, integer_out: np.ndarray,
                     name: str = "") -> torch.Tensor:
    """A layer's output from its crossbar integer pre-activation: times the input and weight steps,
    plus the bias, in the layer's output shape (a plain tensor, also where the layer returned a
    quantization library's quant tensor; torch.ao's layers: requantized as they requantize,
    :func:`hamqcore.quant.torch_ao_output`)."""
    ao_out, out = out, input_value(out)
    sx, sw = layer_steps(m, x, name=name)
    y = torch.from_numpy(np.asarray(integer_out, np.float64)) * sx * sw.reshape(1, -1).to(torch.float64)
    if is_linear(m):  # (vectors, out) -> (..., out); the bias on the last axis
        y = y.reshape(out.shape)
        bias_shape: Tuple[int, ...] = (-1,)
    else:  # (N * positions, C) -> (N, C, *spatial)
        y = y.reshape(out.shape[0], -1, out.shape[1]).transpose(1, 2).reshape(out.shape)
        bias_shape = (1, -1) + (1,) * (out.dim() - 2)
    bias = layer_bias(m)
    if bias is not None:
        y = y + bias.to(torch.float64).reshape(bias_shape)
    return torch_ao_output(m, y, ao_out, name) if is_torch_ao_layer(m) else y.to(out.dtype)


def crossbar_forward(model: nn.Module, inputs: torch.Tensor, config: CrossbarConfig,
                     n_threads: Optional[int] = None, references: Optional[AdcReferences] = None) -> torch.Tensor:
    """``model(inputs)`` (eval, no grad) with every hamqcore quantized layer computed on the crossbar:
    its output is what ``config``'s crossbar reads (:func:`read_module`: the shift-added ADC readings
    of the layer's integer inputs and weights, with the cells, references, variation and faults
    ``config`` names) times the layer's input and weight steps, plus its bias. With a lossless ADC and
    ideal digits this is the digital model's output up to float rounding; a sense amp too coarse for
    its column sums (NeuroSim's default 32 levels for 128 rows of 2-bit cells, or
    ``rows_per_conversion``) clips them, and that shows in the result. ``references``: from
    :func:`calibrate_adc`, for ``adc_reference="calibrated"``. Other layers run as usual. A Linear
    layer may be applied to inputs with any leading dimensions (tokens)."""
    check_config(config)
    check_batch("inputs", inputs)
    if config.adc_reference == "calibrated":
        check_references(references, config)
    names = _quantized_layers(model)

    def hook(m, args, out):
        x = args[0]
        return _crossbar_output(m, x, out, read_module(m, x, config, names[m], references, n_threads=n_threads),
                                names[m])

    coverage(model).move(float_layers(model), "a float layer: computed digitally, not on the crossbar").warn(
        "crossbar_forward")
    return dry_run(model, inputs, [m.register_forward_hook(hook) for m in names])


def energy_reduction(baseline: float, other: float) -> float:
    """Percentage change from baseline to other (negative = saving)."""
    return 100.0 * (other - baseline) / baseline if baseline else math.nan


@dataclass
class SearchPoint:
    """One configuration of a :func:`cheapest_config` search: its crossbar accuracy and energy."""

    config: CrossbarConfig
    accuracy: float
    energy: float                    # J per inference under the configuration's own accounting


@dataclass
class SearchResult:
    """The cheapest configuration meeting the accuracy target (None when none does), its energy
    report, and every configuration evaluated (for a Pareto plot); ``skipped``: overrides the
    configuration refused, with why."""

    best: Optional[SearchPoint]
    report: Optional[EnergyReport]
    points: List[SearchPoint]
    skipped: List[Tuple[Dict[str, object], str]]


DEFAULT_SPACE = {"adc_bits": (None, "auto"), "skip_empty": (False, True), "rows_per_conversion": (0, 64, 32)}


def crossbar_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: CrossbarConfig,
                      batch: int = 64, references: Optional[AdcReferences] = None) -> float:
    """Top-1 accuracy of ``model`` computed on the crossbar (:func:`crossbar_forward`) on (x, y), in
    batches of ``batch`` inputs (``adc_reference="minmax"`` sets its levels per batch, as NeuroSim's
    Python does per test batch)."""
    hits = 0
    for i in range(0, int(x.shape[0]), batch):
        out = crossbar_forward(model, x[i:i + batch], config, references=references)
        hits += int((out.argmax(1) == y[i:i + batch]).sum())
    return hits / max(1, int(x.shape[0]))


def cheapest_config(model: nn.Module, x: torch.Tensor, y: torch.Tensor, base: CrossbarConfig,
                    accuracy_target: float, space: Optional[Dict[str, Sequence]] = None,
                    energy_inputs: int = 16, calibration: Optional[torch.Tensor] = None) -> SearchResult:
    """The lowest-energy configuration whose accuracy ON THE CROSSBAR on (x, y) meets
    ``accuracy_target`` (a fraction), searched over every combination of ``space`` (field ->
    values, None meaning the base's value) applied to ``base``; energy per inference on the first
    ``energy_inputs`` of x. Use a validation split for x, y, and the same space for every model that is
    compared (the study's protocol). ``calibration``: the inputs every ``adc_reference="calibrated"``
    configuration calibrates its references on (:func:`calibrate_adc`; required for those)."""
    check_config(base, "base")
    check_batch("x", x)
    if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1]:
        raise ValueError(f"y must be a tensor of one label per input ({x.shape[0]}), got {getattr(y, 'shape', y)!r}")
    if not isinstance(accuracy_target, (int, float)) or not 0 <= accuracy_target <= 1:
        raise ValueError(f"accuracy_target must be a fraction in [0, 1], got {accuracy_target!r}")
    space = dict(DEFAULT_SPACE if space is None else space)
    fields = {f.name for f in dataclasses.fields(CrossbarConfig)}
    unknown = sorted(set(space) - fields)
    if unknown:
        raise ValueError(f"space names unknown CrossbarConfig field(s) {unknown}")
    import itertools

    points, skipped, seen, reports = [], [], set(), {}
    names = list(space)
    for values in itertools.product(*(space[n] for n in names)):
        overrides = {n: v for n, v in zip(names, values) if v is not None}
        try:
            cfg = dataclasses.replace(base, **overrides)
        except (TypeError, ValueError) as e:
            skipped.append((overrides, str(e)))
            continue
        if cfg in seen:
            continue
        seen.add(cfg)
        refs = None
        if cfg.adc_reference == "calibrated":
            if calibration is None:
                raise ValueError("the search space holds adc_reference='calibrated' configurations: "
                                 "pass calibration= (inputs to calibrate their references on)")
            refs = calibrate_adc(model, calibration, cfg)
        acc = crossbar_accuracy(model, x, y, cfg, references=refs)
        reports[cfg] = estimate_energy(model, x[:energy_inputs], cfg)
        points.append(SearchPoint(cfg, acc, reports[cfg].total_energy))
    i = cheapest_meeting([p.accuracy for p in points], [p.energy for p in points], accuracy_target)
    best = None if i is None else points[i]
    return SearchResult(best, reports[best.config] if best else None, points, skipped)


def cheapest_meeting(accuracies: Sequence[float], energies: Sequence[float], accuracy_target: float) -> Optional[int]:
    """The index of the least energy among the entries whose accuracy is at least ``accuracy_target``
    (the first on a tie), or None when none is: :func:`cheapest_config`'s choice."""
    ok = [i for i, a in enumerate(accuracies) if a >= accuracy_target]
    return min(ok, key=lambda i: energies[i]) if ok else None
