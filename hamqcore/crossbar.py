"""The crossbar simulator at the numpy level: configurations, presets and one layer's simulation.

Every energy is computed in C++ (``cpp/include/hamqcore/crossbar.hpp`` documents the model with its
sources; README "Crossbar model" has the same with a table of constants). A configuration names its
*accounting model*, the rules that turn column currents into energy:

* ``"neurosim-1.3"`` (the default): DNN+NeuroSim V1.3's subarray read energy, exactly as its
  ``SubArray::CalculatePower`` computes it in the default RRAM configuration (conventionalParallel,
  22 nm LSTP, 128 x 128, 2-bit cells, 6 kOhm / 900 kOhm, access transistor 0.25 R_on, wire resistance
  by cell position, offset weight mapping, 5-bit multilevel current-mode sense amp shared by 8
  columns). Components ``adc`` (sense amp with the cell current inside it), ``array`` (bitline
  precharge and wordlines), ``encoder``, ``switch_matrix``, ``mux`` and ``shift_add``. Overrides:
  ``roadmap="hp"``, ``adc="sar"``, ``mapping``, ``cell_bits``, ``reference_column``, ``v_read``,
  ``r_wire_row`` / ``r_wire_col``; NeuroSim sizes its periphery from the geometry and the device, so
  those stay at its defaults.
* ``"neurosim-1.4"``: DNN+NeuroSim V1.4's subarray read energy at *its* defaults, exactly as its
  ``SubArray::CalculatePower`` computes it: SRAM cells (1 bit), conventionalParallel, 22 nm LSTP,
  128 x 128, 5-bit multilevel current-mode sense amp shared by 8 columns with its reference columns
  (V1.4's sense-amp power and latency fits), offset mapping. V1.4 gives every driven SRAM row the same
  conductance whatever bit it stores, so no energy term depends on the weights (HW cannot lower it).
  Components ``adc``, ``array``, ``switch_matrix``, ``mux`` and ``shift_add`` (V1.4 charges no
  encoder energy). Only its defaults are reproduced: no overrides of the device, geometry, mapping or
  HW-aware periphery (the functional options apply).
* ``"mnsim-2.0"``: MNSIM-2.0's default ``SimConfig.ini`` with its crossbar (V^2 G t) and ADC
  (a fixed energy per conversion) models: components ``cell`` and ``adc``.
* ``"bitline"``: the driven cells alone (V^2 G t over the read pulse), the quantity the HamQ argument
  is about: component ``cell``.
"""
from __future__ import annotations

import dataclasses
import functools
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from . import _core
from ._checks import as_finite, as_str, check_choice, check_int, check_int32, check_nonneg, check_threads

# the names of every enum, as the C++ core parses them (cpp/bindings/bind_crossbar.cpp)
MODELS = tuple(_core.MODELS)
MAPPINGS = tuple(_core.MAPPINGS)
ADCS = tuple(_core.ADCS)
ROADMAPS = tuple(_core.ROADMAPS)
ADC_RESOLUTIONS = tuple(_core.ADC_RESOLUTIONS)
LADDER_TIE = float(_core.LADDER_TIE)   # the ADC boundary tolerance (steps): a boundary reads the even level
COLUMN_ORDERS = tuple(_core.COLUMN_ORDERS)
ENERGY_COMPONENTS = tuple(_core.ENERGY_COMPONENTS)
# the components each accounting model charges (the others are always 0 under it)
MODEL_COMPONENTS = {
    "neurosim-1.3": ("adc", "array", "encoder", "switch_matrix", "mux", "shift_add", "reference", "config", "mask",
                     "subtract", "complement", "gain", "select"),
    "neurosim-1.4": ("adc", "array", "switch_matrix", "mux", "shift_add", "gain", "select"),
    "mnsim-2.0": ("cell", "adc"),
    "bitline": ("cell",),
}
DEFAULT_PRESET = "neurosim-1.3"

_INT_FIELDS = ("rows", "cols", "cell_bits", "adc_bits", "cols_per_adc", "adc_full_scale", "rows_per_conversion")
_FLOAT_FIELDS = ("g_on", "g_off", "v_read", "t_read", "r_access", "r_wire_row", "r_wire_col", "e_adc")
_STR_FIELDS = ("model", "mapping", "roadmap", "adc", "adc_resolution", "column_order")
_BOOL_FIELDS = ("reference_column", "skip_empty", "complement")
# the HW-aware periphery options (README "HW-aware periphery"); off in every preset
PERIPHERY_OPTIONS = ("adc_resolution", "skip_empty", "rows_per_conversion", "complement", "column_order")
# The functional path's options (what the crossbar reads: hamqcore.readout); Python-only fields (the
# C++ energy path does not read them), every value with its meaning in CrossbarConfig's docstring.
ADC_REFERENCES = ("full_scale", "calibrated", "minmax", "per_column")
READOUTS = ("digits", "conductance")
# How the groups of a grouped / depthwise convolution share arrays (pack_groups; the energy and the
# functional path both map through it)
GROUP_PACKINGS = ("block_diagonal", "per_group")
# The digital gain of a calibrated conductance readout: each reading times its (array type, digit
# position)'s 1 / gain, a GAIN_BITS-bit fixed-point constant with GAIN_BITS - 1 fractional bits
# (hamqcore.readout); the energy path charges its multiplier (component "gain").
GAIN_BITS = 8
FUNCTIONAL_DEFAULTS = {"adc_reference": "full_scale", "readout": "digits", "g_variation": 0.0, "stuck_on": 0.0,
                       "stuck_off": 0.0, "retention_t": 0.0, "retention_v": 0.0, "retention_target": None,
                       "seed": 0, "group_packing": "block_diagonal"}
# The states a drawn cell can be in (cell_draws: one row of state_digits each): as programmed (or, with
# retention_target, drifted towards it), stuck ON, stuck OFF, retention-drifted up, drifted down.
CELL_STATES = ("programmed", "stuck_on", "stuck_off", "drift_up", "drift_down")


# The defaults are the "neurosim-1.3" preset, whose numbers (like every preset's) live in the C++ core:
# cpp/src/crossbar.cpp preset_config, each with its source.
_DEFAULTS = _core.crossbar_preset(DEFAULT_PRESET)


@dataclass(frozen=True)
class CrossbarConfig:
    """Every parameter of the crossbar model; validated on construction (ValueError / TypeError
    naming the field and the value; the messages come from the C++ core).

    Build one from a preset: ``CrossbarConfig.preset("neurosim-1.3", mapping="differential")``.
    Constructing ``CrossbarConfig()`` gives the ``"neurosim-1.3"`` preset.

    The functional path (what the crossbar reads, :mod:`hamqcore.readout`, README "What the crossbar
    reads"; the energy path charges the circuits they add: the calibrated conductance readout's
    gain multiplier, component ``gain``, and calibrated references' ladder select, ``select``; and
    the drawn cells of ``g_variation`` / ``stuck_on`` / ``stuck_off``):

    * ``adc_reference``: where the ADC's levels sit. ``"full_scale"``: L = 2^adc_bits levels over
      [0, adc_full_scale] (0: rows_per_conversion x the largest digit), the C++ core's ADC;
      ``"calibrated"``: a clipping full scale per layer, array type and digit position, chosen on a
      calibration batch (:func:`hamqcore.energy.calibrate_adc`, MSE-optimal) and then fixed;
      ``"minmax"``: DNN+NeuroSim V1.3's Python quantizer (``utee/wage_quantizer.py``
      ``LinearQuantizeOut``: min-max of each partial-sum tensor over the batch, 2^adc_bits floor
      levels), an oracle that needs the whole batch; ``"per_column"``: each column's full scale is its
      own stored digit sum (``adc_resolution="per_column"``, set together by ``adc_bits="auto"``).
    * ``readout``: ``"digits"`` reads ideal integer digit sums; ``"conductance"`` reads the cells'
      conductances (access transistor and wires at the array's mean position, the energy path's
      cells) in units of one digit step, the OFF cells' leakage removed digitally from the driven-row
      count after the conversion.
    * ``group_packing`` (a mapping option of both paths): ``"block_diagonal"`` stores as many groups
      of a grouped convolution as fit one array's rows side by side, each group's kernels on its own
      rows and columns, every other cell of those rows and columns OFF (the empty code: 0, or
      -2^(b-1) under the offset mapping), its offset correction over its own inputs;
      ``"per_group"``: every group on arrays of its own.
    * ``g_variation``: relative standard deviation of each programmed cell's conductance (device to
      device, drawn once per cell from ``seed``; NeuroSim's Python ``vari``), ``readout="conductance"``
      only. ``stuck_on`` / ``stuck_off``: fraction of cells stuck at the ON / OFF state. The energy
      path charges these cells too (:func:`cell_draws` is the one draw both paths use).
    * ``retention_t``, ``retention_v``, ``retention_target``: retention drift as DNN+NeuroSim V1.3's
      Python models it (``Inference_pytorch/utee/wage_quantizer.py`` ``Retention(x, t, v, detect,
      target)``, its ``--t`` retention time, ``--v`` drift coefficient, ``--detect`` / ``--target``):
      a cell programmed to level d holds clamp((d + 1) t^(s v) - 1, 0, dmax) (its device conductance
      g_off + level / dmax (g_on - g_off)), s drawn once per cell from {-1, 0, +1} (``retention_target``
      None: NeuroSim's random drift, ``detect=0``) or s = sign(target dmax - d) (a fraction in [0, 1]:
      its fixed-direction drift towards that level, ``detect=1``). ``readout="conductance"`` only;
      both paths use the drifted cells (:func:`drift_levels`). NeuroSim clamps to the slice's own min
      and max, redraws s for every input bit and lets the drifted digit feed the next digit's
      extraction; hamqcore clamps to the device range, draws once (a chip's cells drift once) and
      programs every digit from the weight (README "What the crossbar reads").
    """

    model: str = _DEFAULTS["model"]
    rows: int = _DEFAULTS["rows"]
    cols: int = _DEFAULTS["cols"]
    cell_bits: int = _DEFAULTS["cell_bits"]
    mapping: str = _DEFAULTS["mapping"]
    reference_column: bool = _DEFAULTS["reference_column"]
    g_on: float = _DEFAULTS["g_on"]
    g_off: float = _DEFAULTS["g_off"]
    v_read: float = _DEFAULTS["v_read"]
    t_read: float = _DEFAULTS["t_read"]
    r_access: float = _DEFAULTS["r_access"]
    r_wire_row: float = _DEFAULTS["r_wire_row"]
    r_wire_col: float = _DEFAULTS["r_wire_col"]
    roadmap: str = _DEFAULTS["roadmap"]
    adc: str = _DEFAULTS["adc"]
    adc_bits: int = _DEFAULTS["adc_bits"]
    cols_per_adc: int = _DEFAULTS["cols_per_adc"]
    adc_full_scale: int = _DEFAULTS["adc_full_scale"]
    e_adc: float = _DEFAULTS["e_adc"]
    adc_resolution: str = _DEFAULTS["adc_resolution"]
    skip_empty: bool = _DEFAULTS["skip_empty"]
    rows_per_conversion: int = _DEFAULTS["rows_per_conversion"]
    complement: bool = _DEFAULTS["complement"]
    column_order: str = _DEFAULTS["column_order"]
    adc_reference: str = FUNCTIONAL_DEFAULTS["adc_reference"]
    readout: str = FUNCTIONAL_DEFAULTS["readout"]
    g_variation: float = FUNCTIONAL_DEFAULTS["g_variation"]
    stuck_on: float = FUNCTIONAL_DEFAULTS["stuck_on"]
    stuck_off: float = FUNCTIONAL_DEFAULTS["stuck_off"]
    retention_t: float = FUNCTIONAL_DEFAULTS["retention_t"]
    retention_v: float = FUNCTIONAL_DEFAULTS["retention_v"]
    retention_target: Optional[float] = FUNCTIONAL_DEFAULTS["retention_target"]
    seed: int = FUNCTIONAL_DEFAULTS["seed"]
    group_packing: str = FUNCTIONAL_DEFAULTS["group_packing"]

    def __post_init__(self):
        if isinstance(self.adc_bits, str) and self.adc_bits == "auto":
            # adc_bits="auto": per-column resolution, at most the model's default resolution
            object.__setattr__(self, "adc_bits", PRESETS_RAW[self.model]["adc_bits"] if self.model in PRESETS_RAW
                               else _DEFAULTS["adc_bits"])
            object.__setattr__(self, "adc_resolution", "per_column")
        for name in _INT_FIELDS:
            object.__setattr__(self, name, check_int32(name, getattr(self, name)))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in _STR_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
            object.__setattr__(self, name, bool(getattr(self, name)))
        _simulator(self)  # validates (messages come from the C++ core) and caches the tables
        self._check_functional()

    def _check_functional(self):
        set_ = functools.partial(object.__setattr__, self)
        for name, choices in (("adc_reference", ADC_REFERENCES), ("readout", READOUTS),
                              ("group_packing", GROUP_PACKINGS)):
            check_choice(name, as_str(name, getattr(self, name)), choices)
        # per-column references and per-column resolution are one circuit: either name sets both
        if self.adc_resolution == "per_column" and self.adc_reference == "full_scale":
            set_("adc_reference", "per_column")
        elif self.adc_reference == "per_column" and self.adc_resolution == "fixed":
            set_("adc_resolution", "per_column")
        elif (self.adc_resolution == "per_column") != (self.adc_reference == "per_column"):
            raise ValueError(f"adc_reference={self.adc_reference!r} needs adc_resolution='fixed' (per-column "
                             f"resolution sets each column's own reference), got adc_resolution='per_column'")
        if self.adc == "ideal" and self.adc_reference in ("calibrated", "minmax"):
            raise ValueError(f"adc_reference={self.adc_reference!r} places the levels of a quantizing ADC; "
                             "adc='ideal' has none")
        for name in ("g_variation", "stuck_on", "stuck_off"):
            value = check_nonneg(name, getattr(self, name))
            if name != "g_variation" and value > 1.0:
                raise ValueError(f"{name} must be a finite number in [0, 1], got {getattr(self, name)!r}")
            set_(name, value)
        if self.stuck_on + self.stuck_off > 1.0:
            raise ValueError(f"stuck_on + stuck_off must be at most 1, got {self.stuck_on} + {self.stuck_off}")
        if self.g_variation > 0 and self.readout != "conductance":
            raise ValueError(f"g_variation={self.g_variation} varies conductances: it needs readout='conductance', "
                             f"got readout={self.readout!r}")
        set_("retention_t", check_nonneg("retention_t", self.retention_t))
        set_("retention_v", as_finite("retention_v", self.retention_v))
        if self.retention_target is not None:
            target = check_nonneg("retention_target", self.retention_target)
            if target > 1.0:
                raise ValueError(f"retention_target must be None (random drift) or a fraction in [0, 1] of the "
                                 f"cell's range, got {self.retention_target!r}")
            set_("retention_target", target)
        if self.retention_v != 0 and self.retention_t == 0:
            raise ValueError(f"retention_v={self.retention_v} drifts by retention_t^(+-v): it needs retention_t > 0, "
                             "got retention_t=0 (NeuroSim's default t = 0 goes with v = 0: no drift)")
        if drifts(self) and self.readout != "conductance":
            raise ValueError(f"retention drift (retention_t={self.retention_t}, retention_v={self.retention_v}) moves "
                             f"conductances: it needs readout='conductance', got readout={self.readout!r}")
        set_("seed", check_int("seed", self.seed, 0, 2 ** 63 - 1))

    @staticmethod
    def preset(name: str, **overrides) -> "CrossbarConfig":
        """The configuration of an accounting model (``"neurosim-1.3"``, ``"neurosim-1.4"``,
        ``"mnsim-2.0"``, ``"bitline"``) with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
        fields = {f.name for f in dataclasses.fields(CrossbarConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"unknown CrossbarConfig field(s) {unknown}; valid: {sorted(fields)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> Dict[str, object]:
        return dataclasses.asdict(self)

    @property
    def functional(self) -> Dict[str, object]:
        """The functional-path options that differ from their defaults (what the crossbar reads)."""
        return {k: getattr(self, k) for k, v in FUNCTIONAL_DEFAULTS.items() if getattr(self, k) != v}

    @property
    def components(self):
        """The energy components this configuration's accounting model charges."""
        return MODEL_COMPONENTS[self.model]

    @property
    def periphery(self) -> Dict[str, object]:
        """The HW-aware periphery options that differ from the model's preset."""
        base = PRESETS_RAW[self.model]
        return {k: getattr(self, k) for k in PERIPHERY_OPTIONS if getattr(self, k) != base[k]}

    @property
    def gain_bits(self) -> int:
        """The bits of the digital gain constant its readings are multiplied by (0: none): a conductance
        readout through calibrated references (readout.Histograms.references)."""
        return GAIN_BITS if self.readout == "conductance" and self.adc_reference == "calibrated" else 0

    @property
    def extensions(self) -> Tuple[str, ...]:
        """What this configuration adds to the simulator its preset reproduces (hamqcore's, not checked
        against that simulator's own output): the HW-aware periphery options, and under
        ``"neurosim-1.3"`` a mapping other than NeuroSim's offset one (every cell size, 1, 2 and 4 bits,
        is in the golden data)."""
        ext = [f"{k}={v}" for k, v in self.periphery.items()]
        if self.model == "neurosim-1.3":
            if self.mapping != "offset":
                ext.append(f"{self.mapping} mapping")
        return tuple(ext)

    def describe(self) -> str:
        """One line naming the accounting model, the mapping and every non-default periphery option, and
        what of it is hamqcore's extension of the preset's simulator."""
        extra = ", ".join(f"{k}={v}" for k, v in {**self.periphery, **self.functional}.items())
        ext = self.extensions
        return (f"{self.model}, {self.mapping} mapping, {self.cell_bits}-bit cells, {self.rows}x{self.cols} arrays"
                + (f", {extra}" if extra else "")
                + (f" [hamqcore extensions, not validated against the simulator: {', '.join(ext)}]" if ext else ""))


@functools.lru_cache(maxsize=64)
def _simulator(config: CrossbarConfig) -> "_core.Crossbar":
    return _core.Crossbar(**{k: v for k, v in dataclasses.asdict(config).items() if k not in FUNCTIONAL_DEFAULTS},
                          gain_bits=config.gain_bits, digit_references=config.adc_reference == "calibrated")


def stored_digits(w, w_bits: int, config: CrossbarConfig):
    """The cells ``config``'s mapping stores for integer weights ``w`` (out x K): digits
    (arrays, digits, out, K) uint8, digit 0 the least significant, and each digit column's shift-add
    weight (arrays * digits) (the C++ core's rule, cpp/src/crossbar_plan.cpp)."""
    digits, coef = _simulator(check_config(config)).stored_digits(np.asarray(w), check_int32("w_bits", w_bits))
    return digits, np.asarray(coef, np.float64)


@functools.lru_cache(maxsize=256)
def _digit_shape(config: CrossbarConfig, w_bits: int) -> Tuple[int, int]:
    """(array types, digits per weight) of ``config``'s mapping at ``w_bits``."""
    digits, _ = _simulator(config).stored_digits(np.zeros((1, 1), np.int64), w_bits)
    return int(digits.shape[0]), int(digits.shape[1])


def digit_columns(config: CrossbarConfig, w_bits: int) -> int:
    """Digit columns per weight (array types x digits) of ``config``'s mapping at ``w_bits``."""
    A, D = _digit_shape(config, w_bits)
    return A * D


def conversion_histograms(w_q, x_q, config: CrossbarConfig, w_bits: int, a_bits: int, a_signed: bool,
                          bins_per_unit: float, n_threads: Optional[int] = None):
    """What ADC calibration needs of integer weights ``w_q`` (out x K) on integer inputs ``x_q`` (N x K),
    from the C++ core's popcounts: per digit column (arrays x digits, :func:`stored_digits`' order) the
    histogram of its conversions' ADC inputs (every conversion with a driven row of a converted
    column, digit units as ``config.readout`` reads them, leakage included; bins of 1 / ``bins_per_unit``),
    the sum of (reading - leakage) x S and the sum of S^2 (S the ideal digit sum). Returns (counts
    (arrays, digits, bins) int64, vs and ss (arrays, digits)); :mod:`hamqcore.readout`'s dense model
    computes the same (where :func:`core_reads` holds)."""
    config = check_config(config)
    w, x = np.asarray(w_q), np.asarray(x_q)
    r = _simulator(config).simulate(w, x, check_int32("w_bits", w_bits), check_int32("a_bits", a_bits),
                                    bool(a_signed), check_threads("n_threads", n_threads), False, False, None,
                                    config.readout == "conductance", None, float(bins_per_unit), False)
    A, D = _digit_shape(config, int(w_bits))
    if r.histogram is None:     # nothing stored: no conversion
        return np.zeros((A, D, 1), np.int64), np.zeros((A, D)), np.zeros((A, D))
    counts, vs, ss = r.histogram
    return (np.asarray(counts).reshape(A, D, -1), np.asarray(vs, np.float64).reshape(A, D),
            np.asarray(ss, np.float64).reshape(A, D))


def pack_groups(w_groups: List[np.ndarray], x_groups: List[np.ndarray], config: CrossbarConfig, w_bits: int):
    """The matrices the groups of a grouped convolution are stored as (``config.group_packing``):
    a list of (weights, inputs, group indices). Block-diagonal packing stores rows // K groups of K
    inputs side by side; the cells outside a group's block hold the empty code (OFF: 0, or -2^(b-1)
    under the offset mapping, whose code is 0), and their rows are driven by the other groups' inputs.
    :func:`unpack_output` gives each group's output back."""
    G = len(w_groups)
    per = max(1, config.rows // max(1, int(w_groups[0].shape[1]))) if G > 1 else 1
    if config.group_packing == "per_group" or per == 1:
        return [(w, x, [g]) for g, (w, x) in enumerate(zip(w_groups, x_groups))]
    fill = -(1 << (w_bits - 1)) if config.mapping == "offset" else 0
    out = []
    for start in range(0, G, per):
        members = list(range(start, min(G, start + per)))
        o, k = w_groups[start].shape
        w = np.full((o * len(members), k * len(members)), fill, dtype=w_groups[start].dtype)
        for j, g in enumerate(members):
            w[j * o:(j + 1) * o, j * k:(j + 1) * k] = w_groups[g]
        out.append((w, np.concatenate([x_groups[g] for g in members], axis=1), members))
    return out


def unpack_output(y: np.ndarray, x: np.ndarray, members: List[int], config: CrossbarConfig, w_bits: int) -> np.ndarray:
    """The groups' outputs (N, groups x out) of one packed matrix: under the offset mapping the
    periphery's correction 2^(b-1) sum(x) runs over each group's own inputs, not the whole row set."""
    if len(members) == 1 or config.mapping != "offset":
        return y
    k, o = x.shape[1] // len(members), y.shape[1] // len(members)
    half = float(1 << (w_bits - 1))
    total = x.astype(np.float64).sum(1, keepdims=True)
    y = np.array(y, dtype=np.float64)
    for j in range(len(members)):
        own = x[:, j * k:(j + 1) * k].astype(np.float64).sum(1, keepdims=True)
        y[:, j * o:(j + 1) * o] += half * (total - own)
    return y


def simulate_groups(w_groups, x_groups, config: CrossbarConfig, w_bits: int, a_bits: int, a_signed: bool,
                    n_threads: Optional[int] = None, floor: bool = False, output: bool = True,
                    digit_full_scale=None, digit_gain=None, energy: bool = True, name: str = "") -> "LayerEnergy":
    """:func:`simulate_layer` of every group of one layer as ``config`` packs them (:func:`pack_groups`),
    merged; the output (N, groups x out) in group order. ``name``: the layer's (its cells' draws:
    each packed matrix is keyed ``name/first group``, as :mod:`hamqcore.readout` keys it)."""
    parts = []
    for w, x, members in pack_groups(w_groups, x_groups, config, w_bits):
        r = simulate_layer(w, x, config, w_bits, a_bits, a_signed=a_signed, n_threads=n_threads, floor=floor,
                           output=output, digit_full_scale=digit_full_scale, digit_gain=digit_gain,
                           energy=energy, key=f"{name}/{members[0]}")
        if output:
            r.output = unpack_output(r.output, x, members, config, w_bits)
        r.weight_cells = r.weight_cells // max(1, w.size) * sum(int(w_groups[g].size) for g in members)  # not the fill
        parts.append(r)
    return LayerEnergy.merge(parts)


def core_reads(config: CrossbarConfig) -> bool:
    """Whether the C++ core's functional output reads what ``config`` reads (its popcount path: ideal
    digits through any reference but min-max, or conductances of cells of at most 2 bits; no variation
    or faults). Else :mod:`hamqcore.readout`'s dense model is the functional path."""
    if config.adc_reference == "minmax" or varied(config):
        return False
    return config.readout == "digits" or config.cell_bits <= 2


def varied(config: CrossbarConfig) -> bool:
    """Whether ``config``'s cells deviate from their programmed conductances (variation, faults or
    retention drift)."""
    return config.g_variation > 0 or config.stuck_on > 0 or config.stuck_off > 0 or drifts(config)


def drifts(config: CrossbarConfig) -> bool:
    """Whether ``config``'s cells drift (retention_t^retention_v != 1)."""
    return config.retention_t > 0 and config.retention_v != 0 and config.retention_t != 1


def drift_levels(config: CrossbarConfig) -> np.ndarray:
    """The level (digit units, in [0, dmax]) a cell holds in each of :data:`CELL_STATES` for each
    programmed digit 0 .. dmax: (states, dmax + 1) float64. NeuroSim V1.3's ``Retention``
    (``Inference_pytorch/utee/wage_quantizer.py``): (d + 1) t^(s v) - 1 clamped to the cell's range
    (its ``2 * truncateX * ratio - 1`` with truncateX = (d + 1) / 2, ratio = t^(v sign)); with
    ``retention_target``, the programmed state drifts towards target x dmax (s = sign(target dmax - d),
    NeuroSim's ``detect=1``, its target (max - min) x target over a slice that spans [0, dmax])."""
    dmax = (1 << config.cell_bits) - 1
    d = np.arange(dmax + 1, dtype=np.float64)

    def drift(s):
        with np.errstate(over="ignore", under="ignore"):   # t^(s v) beyond float range: the cell saturates
            ratio = config.retention_t ** (config.retention_v * s) if drifts(config) else np.ones_like(d)
            return np.clip((d + 1.0) * ratio - 1.0, 0.0, float(dmax))

    programmed = d if config.retention_target is None else drift(np.sign(config.retention_target * dmax - d))
    return np.stack([programmed, np.full_like(d, dmax), np.zeros_like(d), drift(np.ones_like(d)),
                     drift(-np.ones_like(d))])


def conversion_groups(config: CrossbarConfig, k: int) -> List[Tuple[int, int]]:
    """The row ranges [r0, r1) of ``k`` input rows that convert together: rows_per_conversion rows
    (all of an array's rows when 0) within each rows-tall array row tile."""
    R = config.rows
    RC = config.rows_per_conversion if 0 < config.rows_per_conversion < R else R
    return [(r0, min(r0 + RC, t0 + R, k)) for t0 in range(0, k, R) for r0 in range(t0, min(t0 + R, k), RC)]


class CellDraws(NamedTuple):
    """One stored matrix's drawn cells (:func:`cell_draws`), the C++ core's layout: per digit column
    and row ((columns, k); ``.T`` views them by row) the conductance factor and the state (an index
    into :data:`CELL_STATES`), and each state's level per programmed digit (:func:`drift_levels`). A cell
    in state s holding digit d conducts factor x g(levels[s, d]) (its device at that level, in series
    with the access transistor and the wires)."""

    factor: np.ndarray
    state: np.ndarray
    levels: np.ndarray


def cell_draws(config: CrossbarConfig, columns: int, k: int, key: str = "") -> Optional[CellDraws]:
    """The programmed cells' deviations of one stored matrix of ``k`` rows and ``columns`` digit
    columns (arrays x digits x (outputs + reference column), :func:`stored_digits`' order): each
    cell's conductance factor max(0, 1 + g_variation z), z ~ N(0, 1) (1 for a stuck cell), and its
    state: stuck ON (level dmax) or OFF (level 0) at the rates ``stuck_on`` / ``stuck_off``, else
    retention-drifted up, down or not (NeuroSim's random sign, each 1/3; without ``retention_target``)
    or as programmed. None when ``config`` has no variation, fault or drift. Drawn from ``seed`` and
    ``key`` (the layer), per conversion group of rows, each draw (z, the faults' uniforms, the drift
    signs) rows x columns in row order. The one source of the cells both paths use: the functional
    path reads them (:mod:`hamqcore.readout`), the energy path charges their conductances
    (:func:`simulate_layer`)."""
    if not varied(config):
        return None
    rng = np.random.default_rng([config.seed, zlib.crc32(key.encode())])
    factor = np.ones((columns, k), np.float64)
    state = np.zeros((columns, k), np.uint8)
    random_drift = drifts(config) and config.retention_target is None
    for r0, r1 in conversion_groups(config, k):
        if config.g_variation > 0:
            factor.T[r0:r1] = np.maximum(1.0 + config.g_variation * rng.standard_normal((r1 - r0, columns)), 0.0)
        u = rng.random((r1 - r0, columns))
        st = state.T[r0:r1]
        if random_drift:   # NeuroSim's torch.randint_like(x, -1, 2): -1, 0, +1
            s = rng.integers(-1, 2, size=(r1 - r0, columns))
            st[s == 1] = CELL_STATES.index("drift_up")
            st[s == -1] = CELL_STATES.index("drift_down")
        st[u < config.stuck_on] = CELL_STATES.index("stuck_on")
        st[(u >= config.stuck_on) & (u < config.stuck_on + config.stuck_off)] = CELL_STATES.index("stuck_off")
    factor[np.isin(state, (CELL_STATES.index("stuck_on"), CELL_STATES.index("stuck_off")))] = 1.0
    return CellDraws(factor, state, drift_levels(config))


def digit_conductance(config: CrossbarConfig, levels=None) -> np.ndarray:
    """The conductance (S) of a cell holding each digit 0 .. 2^cell_bits - 1 at the array's mean
    position (cpp/src/crossbar_conductance.cpp digit_conductances): the energy path's cells; or of cells
    holding ``levels`` (digit units in [0, dmax], any shape: drifted levels), the same formula."""
    sim = _simulator(check_config(config))
    if levels is None:
        return np.asarray(sim.digit_conductance(), np.float64)
    lv = np.asarray(levels, np.float64)
    return np.asarray(sim.digit_conductance(lv.ravel()), np.float64).reshape(lv.shape)


PRESETS_RAW: Dict[str, Dict[str, object]] = {m: _core.crossbar_preset(m) for m in MODELS}
PRESETS: Dict[str, CrossbarConfig] = {m: CrossbarConfig(**PRESETS_RAW[m]) for m in MODELS}


def result_field(merge: str, per_vector: bool, core: bool = True, **kw):
    """A result field: how the groups of one layer combine (``merge``), whether it counts events per
    input vector (divided by the batch for per-inference numbers) and whether the C++ result
    (``_core.CrossbarResult``) has it under the same name."""
    return field(metadata={"merge": merge, "per_vector": per_vector, "core": core}, **kw)


@dataclass
class LayerEnergy:
    """One layer simulated on a batch of ``n_vectors`` input vectors: energies in J and currents in
    A, totals over the batch (:meth:`per_inference` divides by a batch size). The one definition of
    the result fields: :func:`simulate_layer` reads each ``core`` field from the C++ result by name,
    :meth:`merge` and :meth:`per_inference` follow each field's rule."""

    energy: Dict[str, float] = result_field("sum", True, core=False)
    model: str = result_field("first", False, core=False)
    mapping: str = result_field("first", False, core=False)
    on_cells: int = result_field("sum", False)
    cells: int = result_field("sum", False)
    mean_current: float = result_field("mean", False, core=False)  # mean over conversions
    max_current: float = result_field("max", False)
    conversions: int = result_field("sum", True)
    idle_conversions: int = result_field("sum", True)
    skipped_conversions: int = result_field("sum", True)
    subarray_reads: int = result_field("sum", True)
    skipped_reads: int = result_field("sum", True)
    read_cycles: int = result_field("sum", True)              # column-mux cycles run by the reads done
    skipped_cycles: int = result_field("sum", True)           # cycles of those reads not run (skip_empty)
    inverted_columns: int = result_field("sum", False)
    resolution_columns: np.ndarray = result_field("sum", False)  # physical columns (per conversion group) by ADC bits; [0] = skipped
    driven_rows: int = result_field("sum", True)
    arrays: int = result_field("sum", False)
    row_tiles: int = result_field("sum", False)
    col_tiles: int = result_field("sum", False)
    latency: float = result_field("max", True)                # s; the groups' arrays run in parallel
    n_vectors: int = result_field("first", False, core=False)
    output: Optional[np.ndarray] = result_field("concat", False, core=False, default=None, repr=False)  # N x out
    weight_cells: int = result_field("sum", False, core=False, default=0)   # cells holding a weight's digit
    array_cells: int = result_field("sum", False, core=False, default=0)    # arrays x rows x cols

    @property
    def utilization(self) -> float:
        """Fraction of the arrays' cells that hold a weight's digit (packing and tiling show here)."""
        return self.weight_cells / self.array_cells if self.array_cells else 0.0

    @property
    def total_energy(self) -> float:
        return float(sum(self.energy.values()))

    @property
    def on_fraction(self) -> float:
        return self.on_cells / self.cells if self.cells else 0.0

    @classmethod
    def merge(cls, parts: List["LayerEnergy"]) -> "LayerEnergy":
        """The groups of one grouped convolution, mapped to separate arrays: energies and counts add,
        the outputs sit side by side in group order."""
        if len(parts) == 1:
            return parts[0]
        first, conv = parts[0], sum(p.conversions for p in parts)
        values = {}
        for f in dataclasses.fields(cls):
            rule, vals = f.metadata["merge"], [getattr(p, f.name) for p in parts]
            if rule == "first":
                values[f.name] = vals[0]
            elif rule == "max":
                values[f.name] = max(vals)
            elif rule == "mean":  # weighted by conversions
                values[f.name] = sum(v * p.conversions for v, p in zip(vals, parts)) / conv if conv else 0.0
            elif rule == "concat":
                values[f.name] = None if vals[0] is None else np.concatenate(vals, axis=1)
            elif f.name == "energy":
                values[f.name] = {k: sum(v[k] for v in vals) for k in first.energy}
            else:
                values[f.name] = sum(vals)
        return cls(**values)

    def per_inference(self, batch: int) -> Dict[str, object]:
        """Every field but the output, with the per-vector counts divided by ``batch`` inferences."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "output":
                continue
            if f.metadata["per_vector"]:
                v = {k: e / batch for k, e in v.items()} if f.name == "energy" else v / batch
            out[f.name] = v
        return out


CORE_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(LayerEnergy) if f.metadata["core"])


def check_config(config, name: str = "config") -> "CrossbarConfig":
    """``config`` itself, or a TypeError naming the argument when it is not a CrossbarConfig."""
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"{name} must be a CrossbarConfig, got {type(config).__name__}")
    return config


def simulate_layer(
    w_q, x_q, config: Optional[CrossbarConfig] = None, w_bits: int = 8, a_bits: int = 8,
    a_signed: Optional[bool] = None, n_threads: Optional[int] = None, floor: bool = False,
    output: bool = True, digit_full_scale=None, digit_gain=None, energy: bool = True, key: str = "",
) -> LayerEnergy:
    """Simulate integer weights ``w_q`` (out x K) driven by integer inputs ``x_q`` (N x K).

    ``x_q`` is unsigned in [0, 2^a_bits - 1] or signed two's complement in
    [-2^(a_bits-1), 2^(a_bits-1) - 1]; ``a_signed=None`` infers it (signed when any input < 0).
    Weights span the mapping's range: [-2^(b-1), 2^(b-1) - 1] for ``"offset"`` and
    ``"twos_complement"``, [-(2^(b-1) - 1), 2^(b-1) - 1] for ``"differential"``.
    ``floor=True`` stores every cell at its lowest conductance (whatever ``w_q`` holds): the least
    energy any weights could give on this mapping, geometry and input data. ``output=False`` skips
    the functional output (``LayerEnergy.output`` is then None), which makes energy-only runs cheaper.
    The output reads ``config.readout`` (``"conductance"``: cells of at most 2 bits, fixed references)
    through the ADC; ``digit_full_scale``: the full scale of every digit column (arrays x digits, the
    order of :func:`stored_digits`' coefficients; calibrated references), ``digit_gain``: the digital
    gain of every digit column's conductance readings (calibrated). :mod:`hamqcore.readout` is
    the general functional model (every option); this is its fast path. ``energy=False`` computes the
    output alone (what :func:`hamqcore.energy.crossbar_forward` needs; every energy and current is
    then NaN), about a quarter faster.

    Variation and faults (``g_variation``, ``stuck_on``, ``stuck_off``): the energy is that of the
    drawn cells (:func:`cell_draws` from ``seed`` and ``key``, the cells :mod:`hamqcore.readout`
    reads for the same key), each at its own position; their functional output is the dense model's
    (:func:`hamqcore.readout.read_layer`), so ``output`` must be False here. ``floor=True`` keeps
    the draws: every programmable cell at its lowest conductance (times its factor), stuck cells stuck.
    """
    config = check_config(config if config is not None else PRESETS[DEFAULT_PRESET])
    if a_signed is not None and not isinstance(a_signed, (bool, np.bool_)):
        raise TypeError(f"a_signed must be True, False or None, got {a_signed!r}")
    for name, flag in (("floor", floor), ("output", output), ("energy", energy)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    if not isinstance(key, str):
        raise TypeError(f"key must be a string, got {key!r}")
    if output and not core_reads(config):
        raise ValueError("the C++ core's functional output reads ideal or nominal cells (of at most 2 bits) "
                         f"through fixed, per-column or calibrated references; {config.describe()} reads more: "
                         "its output is hamqcore.readout.read_layer's (simulate_layer(..., output=False) for "
                         "the energy)")
    w = np.asarray(w_q)
    x = np.asarray(x_q)
    wb = check_int32("w_bits", w_bits)
    draws = None
    if energy and varied(config) and w.ndim == 2:    # (any other shape: the core's error names w)
        ref = config.mapping == "offset" and config.reference_column
        draws = cell_draws(config, digit_columns(config, wb) * (w.shape[0] + int(ref)), w.shape[1], key)
    r = _simulator(config).simulate(w, x, wb, check_int32("a_bits", a_bits),
                                    None if a_signed is None else bool(a_signed),
                                    check_threads("n_threads", n_threads), bool(floor),
                                    bool(output), None if digit_full_scale is None
                                    else [float(v) for v in np.asarray(digit_full_scale, np.float64).ravel()],
                                    bool(output) and config.readout == "conductance",
                                    None if digit_gain is None
                                    else [float(v) for v in np.asarray(digit_gain, np.float64).ravel()],
                                    0.0, bool(energy), *(draws or (None, None, None)))
    return LayerEnergy(
        weight_cells=digit_columns(config, wb) * int(w.size), array_cells=int(r.arrays) * config.rows * config.cols,
        energy={c: r.energy[c] for c in config.components}, model=config.model, mapping=config.mapping,
        mean_current=r.sum_current / r.conversions if r.conversions else 0.0, n_vectors=int(x.shape[0]),
        output=None if not output else np.asarray(r.output).reshape(x.shape[0], w.shape[0]),
        **{name: getattr(r, name) for name in CORE_RESULT_FIELDS},
    )
