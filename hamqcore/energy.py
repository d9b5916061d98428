"""Crossbar energy: data-dependent bitline currents and energy per inference.

The model (computed in C++, ``cpp/include/hamqcore/crossbar.hpp``; README "Crossbar model"):

* integer weights W (out x K; conv weights reshaped to out x in*kh*kw per group) are tiled onto
  ``rows x cols`` arrays; each magnitude takes ``ceil(m / cell_bits)`` digit columns, a cell with
  digit d conducts ``G(d) = g_off + d / (2^cell_bits - 1) (g_on - g_off)``;
* ``mapping="differential"``: positive and negative arrays; ``"offset"``: ``q + 2^(bits-1)`` plus a
  reference column group per array whose reading is subtracted;
* inputs are applied bit-serially (one read pulse per input bit); for every vector, pulse, row
  tile and column ``G_col = sum of the driven cells' conductances``, ``I_col = V_read G_col``,
  ``E_cell = V_read I_col t_read``; each conversion costs the current-dependent sense-amp/ADC energy
  (NeuroSim multilevel sense amp or SAR) plus ``e_shift_add``; each driven row costs ``e_wordline``
  per pulse and array;
* the functional output is the ADC-quantised column sums shift-added back to the layer output
  (exactly ``x @ W.T`` with an ideal or lossless ADC).
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import operator
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import _core

ENERGY_COMPONENTS = ("cell", "adc", "wordline", "shift_add")

_INT_FIELDS = ("rows", "cols", "cell_bits", "adc_bits", "cols_per_adc", "adc_full_scale")
_FLOAT_FIELDS = ("g_on", "g_off", "v_read", "t_read", "e_wordline", "e_shift_add")


@dataclass(frozen=True)
class CrossbarConfig:
    """Every parameter of the crossbar model; validated on construction (ValueError/TypeError).

    Presets (``CrossbarConfig.preset(name, **overrides)``):

    * ``"neurosim-rram-22nm"``: the RRAM defaults of DNN+NeuroSim (Peng et al., "DNN+NeuroSim: An
      end-to-end benchmarking framework for compute-in-memory accelerators", IEDM 2019; its
      ``Param.cpp``): R_on 6 kOhm, R_off 900 kOhm (on/off ratio 150), V_read 0.5 V, 10 ns read
      pulse, 128 x 128 sub-arrays, 5-bit multilevel sense amp (32 levels) shared by 8 columns.
    * ``"rram-256"``: MNSIM-like (Zhu et al., "MNSIM 2.0", GLSVLSI 2020, default SimConfig):
      256 x 256 crossbars, LRS 10 kOhm, HRS 1 MOhm, V_read 0.15 V, 6-bit SAR ADC.

    ``e_wordline`` and ``e_shift_add`` are not given by those sources; the presets use C V^2
    estimates (a wordline of ``cols`` cells at ~0.2 fF each driven to V_read; a 22 nm 16-bit
    shift-add of ~10 fJ) and state them here so they can be overridden.
    """

    rows: int = 128
    cols: int = 128
    cell_bits: int = 1
    mapping: str = "differential"
    g_on: float = 1.0 / 6e3
    g_off: float = 1.0 / 900e3
    v_read: float = 0.5
    t_read: float = 10e-9
    adc: str = "multilevel"
    adc_bits: int = 5
    cols_per_adc: int = 8
    adc_full_scale: int = 0
    e_wordline: float = 128 * 0.2e-15 * 0.5**2
    e_shift_add: float = 10e-15

    def __post_init__(self):
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            try:
                object.__setattr__(self, name, operator.index(value))
            except TypeError:
                raise TypeError(f"{name} must be an integer, got {value!r}") from None
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("mapping", "adc"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string, got {getattr(self, name)!r}")
        _simulator(self)  # validates (messages come from the C++ core) and caches the tables

    @staticmethod
    def preset(name: str, **overrides) -> "CrossbarConfig":
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
        fields = {f.name for f in dataclasses.fields(CrossbarConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown CrossbarConfig field(s) {unknown}; valid: {sorted(fields)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=32)
def _simulator(config: CrossbarConfig) -> "_core.Crossbar":
    return _core.Crossbar(**dataclasses.asdict(config))


PRESETS: Dict[str, CrossbarConfig] = {}
PRESETS["neurosim-rram-22nm"] = CrossbarConfig()
PRESETS["rram-256"] = CrossbarConfig(
    rows=256, cols=256, g_on=1.0 / 10e3, g_off=1.0 / 1e6, v_read=0.15, t_read=10e-9, adc="sar",
    adc_bits=6, cols_per_adc=8, e_wordline=256 * 0.2e-15 * 0.15**2, e_shift_add=10e-15,
)
DEFAULT_PRESET = "neurosim-rram-22nm"


class _CellTotals:
    """Totals shared by per-layer results: needs ``energy``, ``on_cells`` and ``cells``."""

    @property
    def total_energy(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def on_fraction(self) -> float:
        return self.on_cells / self.cells if self.cells else 0.0


@dataclass
class LayerEnergy(_CellTotals):
    """Result of simulating one layer on a batch of ``n_vectors`` input vectors (energies in J,
    currents in A, totals over the batch; see ``per_vector`` for averages)."""

    energy: Dict[str, float]
    on_cells: int
    cells: int
    mean_current: float
    max_current: float
    conversions: int
    arrays: int
    row_tiles: int
    col_tiles: int
    latency: float
    n_vectors: int
    output: np.ndarray = field(repr=False)


def simulate_layer(
    w_q, x_q, config: Optional[CrossbarConfig] = None, w_bits: int = 8, a_bits: int = 8,
    a_signed: Optional[bool] = None, n_threads: Optional[int] = None,
) -> LayerEnergy:
    """Simulate integer weights ``w_q`` (out x K) driven by integer inputs ``x_q`` (N x K).

    ``x_q`` is unsigned in [0, 2^a_bits - 1] or signed two's complement in
    [-2^(a_bits-1), 2^(a_bits-1) - 1]; ``a_signed=None`` infers it (signed when any input < 0).
    """
    config = config if config is not None else PRESETS[DEFAULT_PRESET]
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    r = _simulator(config).simulate(
        np.asarray(w_q), np.asarray(x_q), _index("w_bits", w_bits), _index("a_bits", a_bits), a_signed,
        None if n_threads is None else _index("n_threads", n_threads),
    )
    conv = r["conversions"]
    return LayerEnergy(
        energy={"cell": r["e_cell"], "adc": r["e_adc"], "wordline": r["e_wordline"], "shift_add": r["e_shift_add"]},
        on_cells=r["on_cells"], cells=r["cells"],
        mean_current=r["sum_current"] / conv if conv else 0.0, max_current=r["max_current"],
        conversions=conv, arrays=r["arrays"], row_tiles=r["row_tiles"], col_tiles=r["col_tiles"],
        latency=r["latency"], n_vectors=int(np.shape(x_q)[0]), output=r["y"],
    )


def _index(name, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


# ------------------------------------------------------------------------------------------------
# Whole models (torch)
# ------------------------------------------------------------------------------------------------


@dataclass
class LayerRow(_CellTotals):
    """One layer of an :class:`EnergyReport`; energies and counts are per inference."""

    name: str
    kind: str
    shape: List[int]          # weight shape
    vectors: float            # input vectors per inference (output positions)
    arrays: int
    on_cells: int
    cells: int
    mean_current: float
    max_current: float
    conversions: float
    energy: Dict[str, float]


@dataclass
class EnergyReport:
    """Per-layer rows and totals per inference (averaged over the batch)."""

    layers: List[LayerRow]
    batch: int
    config: CrossbarConfig
    w_bits: int
    a_bits: int

    @property
    def energy(self) -> Dict[str, float]:
        return {c: float(sum(l.energy[c] for l in self.layers)) for c in ENERGY_COMPONENTS}

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

    def to_dict(self) -> Dict[str, object]:
        return {
            "config": self.config.to_dict(), "w_bits": self.w_bits, "a_bits": self.a_bits, "batch": self.batch,
            "total_energy_j": self.total_energy, "energy_j": self.energy, "on_fraction": self.on_fraction,
            "mean_current_a": self.mean_current,
            "layers": [
                {**dataclasses.asdict(l), "on_fraction": l.on_fraction, "total_energy": l.total_energy}
                for l in self.layers
            ],
        }

    def to_json(self, path) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def to_csv(self, path) -> None:
        cols = ["name", "kind", "shape", "vectors", "arrays", "on_fraction", "mean_current", "max_current",
                "conversions", *[f"e_{c}" for c in ENERGY_COMPONENTS], "e_total"]
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for l in self.layers:
                w.writerow([l.name, l.kind, "x".join(map(str, l.shape)), l.vectors, l.arrays, l.on_fraction,
                            l.mean_current, l.max_current, l.conversions,
                            *[l.energy[c] for c in ENERGY_COMPONENTS], l.total_energy])

    def plot(self, path, title: Optional[str] = None) -> None:
        """Stacked bars of energy per layer and component (matplotlib, Agg)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(self.layers) + 2), 4))
        names = [l.name for l in self.layers]
        bottom = np.zeros(len(self.layers))
        for c in ENERGY_COMPONENTS:
            vals = np.array([l.energy[c] for l in self.layers]) * 1e9
            ax.bar(names, vals, bottom=bottom, label=c)
            bottom += vals
        ax.set_ylabel("energy per inference (nJ)")
        ax.set_title(title or f"total {self.total_energy * 1e9:.3g} nJ/inference")
        ax.legend()
        ax.tick_params(axis="x", rotation=70, labelsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    def __str__(self) -> str:
        head = (f"{'layer':<28} {'weight':>16} {'arrays':>6} {'ON %':>6} {'I mean uA':>9} "
                + " ".join(f"{c + ' nJ':>12}" for c in ENERGY_COMPONENTS) + f" {'total nJ':>10}")
        lines = [head, "-" * len(head)]
        for l in self.layers:
            lines.append(
                f"{l.name[:28]:<28} {'x'.join(map(str, l.shape)):>16} {l.arrays:>6} {100 * l.on_fraction:>6.2f} "
                f"{l.mean_current * 1e6:>9.3f} " + " ".join(f"{l.energy[c] * 1e9:>12.4f}" for c in ENERGY_COMPONENTS)
                + f" {l.total_energy * 1e9:>10.4f}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"{'total per inference':<28} {'':>16} {sum(l.arrays for l in self.layers):>6} "
            f"{100 * self.on_fraction:>6.2f} {self.mean_current * 1e6:>9.3f} "
            + " ".join(f"{self.energy[c] * 1e9:>12.4f}" for c in ENERGY_COMPONENTS) + f" {self.total_energy * 1e9:>10.4f}"
        )
        return "\n".join(lines)


def estimate_energy(
    model, inputs, config: Optional[CrossbarConfig] = None, w_bits: int = 8, a_bits: int = 8,
    n_threads: Optional[int] = None, layers: Optional[Sequence[str]] = None, zero_weights: bool = False,
) -> EnergyReport:
    """Run ``model(inputs)`` once and simulate every Conv1d/Conv2d/Linear on the crossbar.

    Each layer's weights and inputs are quantised by the layer's own quantizers when it is a
    hamqcore quantized layer (:mod:`hamqcore.quant`), else symmetric per-output-channel weights
    (``w_bits``) and per-tensor activations (``a_bits``; unsigned when the layer input is
    non-negative). Energies are per inference: totals over the batch divided by its size.

    ``zero_weights=True`` simulates the same layer inputs with every weight 0: the floor that no
    choice of weights can go below on this mapping and data (ADC conversions, OFF-cell leakage,
    wordlines, shift-add).
    """
    import torch

    from . import _torch_energy

    config = config if config is not None else PRESETS[DEFAULT_PRESET]
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    w_bits, a_bits = _index("w_bits", w_bits), _index("a_bits", a_bits)
    captured = _torch_energy.capture_layer_inputs(model, inputs, layers)
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else 1
    rows = []
    for name, module, x in captured:
        w_int, x_cols, wb, ab, a_signed, groups = _torch_energy.layer_matrices(module, x, w_bits, a_bits)
        if zero_weights:
            w_int = [np.zeros_like(w) for w in w_int]
        totals = None
        for g in range(groups):
            r = simulate_layer(w_int[g], x_cols[g], config, wb, ab, a_signed=a_signed, n_threads=n_threads)
            totals = r if totals is None else _merge(totals, r)
        conv = totals.conversions
        rows.append(LayerRow(
            name=name, kind=type(module).__name__, shape=list(module.weight.shape),
            vectors=x_cols[0].shape[0] / batch, arrays=totals.arrays, on_cells=totals.on_cells, cells=totals.cells,
            mean_current=totals.mean_current, max_current=totals.max_current, conversions=conv / batch,
            energy={k: v / batch for k, v in totals.energy.items()},
        ))
    if not rows:
        raise ValueError("model has no Conv1d, Conv2d or Linear layer to map onto the crossbar")
    return EnergyReport(layers=rows, batch=batch, config=config, w_bits=w_bits, a_bits=a_bits)


def _merge(a: LayerEnergy, b: LayerEnergy) -> LayerEnergy:
    """Two groups of one grouped convolution, mapped to separate arrays."""
    conv = a.conversions + b.conversions
    return LayerEnergy(
        energy={k: a.energy[k] + b.energy[k] for k in a.energy}, on_cells=a.on_cells + b.on_cells,
        cells=a.cells + b.cells,
        mean_current=(a.mean_current * a.conversions + b.mean_current * b.conversions) / conv if conv else 0.0,
        max_current=max(a.max_current, b.max_current), conversions=conv, arrays=a.arrays + b.arrays,
        row_tiles=a.row_tiles + b.row_tiles, col_tiles=a.col_tiles + b.col_tiles,
        latency=max(a.latency, b.latency), n_vectors=a.n_vectors, output=np.zeros((0, 0)),
    )


def energy_reduction(baseline: float, other: float) -> float:
    """Percentage change from baseline to other (negative = saving)."""
    return 100.0 * (other - baseline) / baseline if baseline else math.nan
