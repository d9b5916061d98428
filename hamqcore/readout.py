"""What the crossbar reads: the functional path of one layer, cell by cell.

The C++ core's functional output reads ideal integer digit sums through a fixed-reference ADC, fast
(a popcount GEMM). This module is the general model, a dense GEMM per conversion group and input
pulse over a matrix of cell values, with everything a chip adds on top:

* the cells: ideal digits, or (``readout="conductance"``) the conductance of each digit at the
  array's mean position (``digit_conductances`` in the C++ core, the energy path's cells) in units of
  one digit step u = (g(dmax) - g(0)) / dmax, each programmed cell varied by
  (1 + g_variation z), z ~ N(0, 1) drawn once per cell, stuck-at-ON / OFF faults and retention
  drift (``hamqcore.crossbar.cell_draws``, the cells the energy path charges);
* the columns: the mapping's stored digits and shift-add weights (``stored_digits`` in the C++
  core), conversion groups of rows_per_conversion rows in rows x cols arrays, complemented columns
  (the C++ rule: stored inverted when that leaves fewer ON cells in the array row tile), skipped
  empty columns;
* the ADC (``adc_reference``): fixed full scale, per-column, calibrated (per layer, array type and
  digit position, with a least-squares digital gain) or NeuroSim's min-max; readings
  step * min(L - 1, round(v / step)) (a boundary, within LADDER_TIE of a step, to the even level) with
  step = max(1, full_scale / (L - 1)) as the C++ core's ``adc_reading``, or NeuroSim V1.3's
  ``LinearQuantizeOut`` (Inference_pytorch/utee/wage_quantizer.py) for ``"minmax"``;
* the digital periphery: the OFF cells' leakage nd g(0) / u subtracted from each reading (nd: the
  driven rows, which the periphery counts), complemented columns corrected (nd dmax - reading), the
  readings shift-added over digits and pulses, and the offset mapping's 2^(b-1) sum(x) (or its
  reference columns' readings) subtracted.

Where the C++ core's fast popcount path reads the same (``hamqcore.crossbar.core_reads``: no variation
or faults, no min-max, conductances only for cells of at most 2 bits) both give the same output
(tests/test_readout.py checks them against each other on random layers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .crossbar import (GAIN_BITS, LADDER_TIE, CrossbarConfig, cell_draws, conversion_groups, digit_conductance,
                       stored_digits)

# (array type, digit position) -> (full scale, gain) per layer: the ADC's clipping point in digit units
# of current, and the digital gain that turns a reading into digit units (1 for ideal digits)
LayerReferences = Dict[Tuple[int, int], Tuple[float, float]]
HIST_BINS_PER_UNIT = 8          # resolution of the calibration histograms (readings in digit units)
MAX_GEMM_ELEMENTS = 1 << 23     # vectors per GEMM chunk: at most this many readings at once


def adc_read(v: torch.Tensor, full_scale, levels, ideal: bool) -> torch.Tensor:
    """The ADC of the C++ core (crossbar_readings.cpp adc_step / adc_reading) on readings ``v``:
    ``levels`` levels over [0, full_scale], in steps of at least one digit unit, saturating at the top;
    a reading on a level boundary (within LADDER_TIE of a step) reads the even level (:func:`ladder_level`)."""
    if ideal:
        return v
    full_scale = torch.as_tensor(full_scale, dtype=torch.float64)
    top = torch.as_tensor(levels, dtype=torch.float64) - 1
    step = torch.clamp(full_scale / top, min=1.0)
    return step * torch.minimum(ladder_level(v / step), top)


def ladder_level(q: torch.Tensor) -> torch.Tensor:
    """The nearest level to q = reading / step, a boundary (within LADDER_TIE of a step) to the even level:
    the C++ core's ``ladder_level`` (cpp/include/hamqcore/crossbar.hpp), before its top clamp."""
    t = q + 0.5
    level = torch.floor(t + LADDER_TIE)
    half = 0.5 * level                                  # exact: level is a whole number
    odd = torch.floor(half) != half
    return torch.where(((t - level) <= LADDER_TIE) & odd, level - 1.0, level)


def minmax_read(v: torch.Tensor, bits: int) -> torch.Tensor:
    """DNN+NeuroSim V1.3's LinearQuantizeOut (Inference_pytorch/utee/wage_quantizer.py) on one
    partial-sum tensor: 2^bits floor levels over [min, max] of the tensor."""
    lo, hi = v.min(), v.max()
    if not hi > lo:
        return v
    step = (hi - lo) * 2.0 ** (-bits)
    index = torch.clamp(torch.floor((v - lo) / step), 0, 2 ** bits - 1)
    return index * step + lo


@dataclass
class Histograms:
    """Calibration data: per (array type, digit position) a histogram of the ADC inputs (digit units,
    HIST_BINS_PER_UNIT bins per unit) over every conversion of the calibration batch, and the sums
    of (reading - leakage) x S and S^2 (S the ideal digit sum) for the least-squares gain."""

    counts: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict)
    vs: Dict[Tuple[int, int], float] = field(default_factory=dict)
    ss: Dict[Tuple[int, int], float] = field(default_factory=dict)

    def add_gain(self, key: Tuple[int, int], v: torch.Tensor, s: torch.Tensor) -> None:
        self.add_sums(key, float((v * s).sum()), float((s * s).sum()))

    def references(self, levels: int) -> "LayerReferences":
        """Per key: the MSE-optimal full scale (:func:`mse_full_scale`) and the least-squares gain."""
        return {k: (mse_full_scale(h, levels), quantized_gain(self.vs.get(k, 0.0), self.ss.get(k, 0.0)))
                for k, h in self.counts.items()}

    def add(self, key: Tuple[int, int], v: torch.Tensor) -> None:
        b = torch.clamp(torch.floor(v.reshape(-1) * HIST_BINS_PER_UNIT), min=0).to(torch.int64)
        self.add_counts(key, np.bincount(b.numpy(), minlength=1))

    def add_counts(self, key: Tuple[int, int], h: np.ndarray) -> None:
        """Add a histogram of ADC inputs already binned (HIST_BINS_PER_UNIT bins per unit) to ``key``'s."""
        old = self.counts.get(key)
        if old is None:
            self.counts[key] = h
        else:
            n = max(len(old), len(h))
            self.counts[key] = np.pad(old, (0, n - len(old))) + np.pad(h, (0, n - len(h)))

    def add_sums(self, key: Tuple[int, int], vs: float, ss: float) -> None:
        """Add the least-squares gain's sums (:meth:`add_gain`) already summed."""
        self.vs[key] = self.vs.get(key, 0.0) + float(vs)
        self.ss[key] = self.ss.get(key, 0.0) + float(ss)


def quantized_gain(vs: float, ss: float) -> float:
    """The least-squares gain vs / ss of a conductance readout as the chip holds it: its inverse (what a
    reading is multiplied by) a GAIN_BITS-bit fixed-point constant with GAIN_BITS - 1 fractional bits,
    clamped to that format's range; 1 without data."""
    if not (ss > 0 and vs > 0):
        return 1.0
    frac = float(1 << (GAIN_BITS - 1))
    inv = min(max(round(ss / vs * frac), 1), (1 << GAIN_BITS) - 1) / frac
    return 1.0 / inv


def mse_full_scale(hist: np.ndarray, levels: int, candidates: int = 256) -> float:
    """The full scale (digit units) whose ADC reads the histogrammed values with the least mean squared
    error, over full scales from levels - 1 (a unit step) to the largest value seen. MSE, not a
    percentile: a reading's error reaches the layer output times its fixed shift-add weight, so the
    output's squared error is the readings' (per digit position), and MSE has no free parameter."""
    nz = np.nonzero(hist)[0]
    if len(nz) == 0:
        return float(levels - 1)
    centres = (np.arange(nz[-1] + 1) + 0.5) / HIST_BINS_PER_UNIT
    w = hist[: nz[-1] + 1].astype(np.float64)
    top = max(float(centres[-1]), float(levels - 1))

    def best(fs):
        step = np.maximum(1.0, fs / (levels - 1))[:, None]
        q = step * np.minimum(np.round(centres[None, :] / step), levels - 1)
        i = int(np.argmin(((q - centres[None, :]) ** 2 * w[None, :]).sum(1)))
        return i, fs

    # a grid over [levels - 1, top], then a finer one around its best point
    i, fs = best(np.unique(np.concatenate([np.linspace(levels - 1, top, candidates), [top]])))
    j, fine = best(np.linspace(fs[max(0, i - 1)], fs[min(len(fs) - 1, i + 1)], candidates))
    return float(fine[j])

class LayerCells:
    """One layer's weights as the cells of ``config``'s arrays: per conversion group the cell values
    (digit units; rows x columns), each column's shift-add weight, output, array type and digit
    position, and which columns are complemented or skipped."""

    def __init__(self, w: np.ndarray, config: CrossbarConfig, w_bits: int, key: str = ""):
        c = config
        digits, coef = stored_digits(w, w_bits, c)                  # (A, D, out, K), (A * D)
        self.A, self.D, out, K = digits.shape
        ref = c.mapping == "offset" and c.reference_column
        if ref:  # the reference columns: the code of q = 0 in every row
            ref_d, _ = stored_digits(np.zeros((1, K), np.int64), w_bits, c)
            digits = np.concatenate([digits, ref_d], axis=2)
        self.out, self.K, self.ref = out, K, ref
        G = digits.shape[2]
        # columns ordered (array type, digit, output); cells (K, columns)
        stored = torch.from_numpy(digits.reshape(self.A * self.D * G, K).T.astype(np.int64))
        self.coef = torch.tensor(np.repeat(np.asarray(coef), G), dtype=torch.float64)
        self.col_out = torch.arange(G).repeat(self.A * self.D)
        self.col_key = [(a, d) for a in range(self.A) for d in range(self.D)]
        self.col_keyidx = torch.arange(self.A * self.D).repeat_interleave(G)
        self.dmax = (1 << c.cell_bits) - 1
        R = c.rows
        RC = c.rows_per_conversion if 0 < c.rows_per_conversion < R else R
        self.groups: List[Tuple[int, int]] = conversion_groups(c, K)
        self.fs_fixed = float(c.adc_full_scale if c.adc_full_scale > 0 else RC * self.dmax)
        # complement: per array row tile and column, inverted when that leaves fewer ON cells
        inverted = torch.zeros((len(range(0, K, R)), stored.shape[1]), dtype=torch.bool)
        if c.complement and c.mapping != "differential":
            for t, t0 in enumerate(range(0, K, R)):
                tile = stored[t0:min(t0 + R, K)]
                on, on_inv = (tile != 0).sum(0), (tile != self.dmax).sum(0)
                inverted[t] = on_inv < on
        self.inv = [inverted[r0 // R] for r0, _ in self.groups]
        # cell values per group: digits, or conductances in digit units, varied and faulty
        g = digit_conductance(c)
        self.conductance = c.readout == "conductance"
        self.unit = (g[-1] - g[0]) / self.dmax
        self.leak = g[0] / self.unit if self.conductance else 0.0
        self.cells, self.fs_col, self.levels_col, self.skip, self.digits = [], [], [], [], []
        draws = cell_draws(c, stored.shape[1], K, key)      # the energy path charges the same cells
        if draws is not None:   # each state's cell value per programmed digit: its level's conductance
            lv = draws.levels
            state_vals = torch.from_numpy(digit_conductance(c, lv) / self.unit if self.conductance else lv)
        for (r0, r1), inv in zip(self.groups, self.inv):
            d = torch.where(inv, self.dmax - stored[r0:r1], stored[r0:r1])
            nominal = torch.from_numpy(g / self.unit)[d] if self.conductance else d.to(torch.float64)
            vals = nominal
            if draws is not None:
                factor, state = (torch.from_numpy(a.T[r0:r1]) for a in draws[:2])
                vals = state_vals[state.to(torch.int64), d] * factor
            self.cells.append(vals)
            self.digits.append(d.to(torch.float64) if self.conductance else None)   # calibration's ideal sums
            st_sum = d.sum(0).to(torch.float64)
            self.skip.append((d != 0).sum(0) == 0 if c.skip_empty else torch.zeros(d.shape[1], dtype=torch.bool))
            # per-column resolution: the fewest bits (>= 1, <= adc_bits) whose levels cover the column's
            # stored digit sum; its full scale is the column's nominal current with every row driven
            self.levels_col.append(2.0 ** torch.clamp(torch.ceil(torch.log2(st_sum + 1)), 1, c.adc_bits))
            self.fs_col.append(nominal.sum(0))

def read_layer(w: np.ndarray, x: np.ndarray, config: CrossbarConfig, w_bits: int, a_bits: int,
               a_signed: bool, key: str = "", references: Optional[LayerReferences] = None,
               histograms: Optional[Histograms] = None, partials: Optional[list] = None) -> np.ndarray:
    """The functional output of integer weights ``w`` (out x K) on integer inputs ``x`` (N x K):
    (N, out) float64, what ``config``'s crossbar reads after its digital periphery. ``key`` seeds the
    layer's cell variation and faults (the same cells on every call). ``references``: the calibrated
    full scales (``adc_reference="calibrated"``); ``histograms``: filled with the ADC inputs instead
    of converting them (calibration); ``partials``: appended one (group, pulse, array, digit, ADC readings
    (N, out), leakage included) per conversion tensor (the NeuroSim golden test)."""
    c = config
    cells = LayerCells(w, c, w_bits, key)
    N = x.shape[0]
    xi = torch.from_numpy(np.asarray(x, np.int64))
    P = a_bits
    if a_signed:
        xi = torch.remainder(xi, 1 << a_bits)
    pulse_coef = [float(1 << p) for p in range(P)]
    if a_signed:
        pulse_coef[-1] = -pulse_coef[-1]
    ideal = c.adc == "ideal"
    L = float(1 << c.adc_bits)
    C = cells.coef.shape[0]
    mode = c.adc_reference
    if mode == "calibrated" and histograms is None:
        if references is None:
            raise ValueError("adc_reference='calibrated' needs the layer's references: "
                             "hamqcore.energy.calibrate_adc(model, calibration_inputs, config)")
        fs_key = torch.tensor([references[k][0] for k in cells.col_key], dtype=torch.float64)[cells.col_keyidx]
        gain = torch.tensor([references[k][1] for k in cells.col_key], dtype=torch.float64)[cells.col_keyidx]
    acc = torch.zeros((N, C), dtype=torch.float64)
    if histograms is not None:     # every key, even one whose columns are all skipped
        for k in cells.col_key:
            histograms.counts.setdefault(k, np.zeros(1, np.int64))
    chunk = N if mode == "minmax" else max(1, MAX_GEMM_ELEMENTS // max(1, C))
    for gi, (r0, r1) in enumerate(cells.groups):
        V = cells.cells[gi]
        for p in range(P):
            xb_all = ((xi[:, r0:r1] >> p) & 1).to(torch.float64)
            for n0 in range(0, N, chunk):
                xb = xb_all[n0:n0 + chunk]
                nd = xb.sum(1, keepdim=True)
                v = xb @ V                                   # ADC inputs, digit units (leakage included)
                if histograms is not None:
                    live = ~cells.skip[gi]
                    # the ideal digit sums; a digit readout reads them already (the gain is unused there)
                    S = xb @ cells.digits[gi] if cells.conductance else v
                    busy = nd.reshape(-1) > 0
                    for ki, k in enumerate(cells.col_key):
                        sel = live & (cells.col_keyidx == ki)
                        histograms.add(k, v[:, sel][busy])
                        histograms.add_gain(k, (v - cells.leak * nd)[:, sel], S[:, sel])
                    continue
                if mode == "minmax" and not ideal:
                    r = torch.empty_like(v)
                    for ki in range(len(cells.col_key)):
                        sel = cells.col_keyidx == ki
                        r[:, sel] = minmax_read(v[:, sel], c.adc_bits)
                elif mode == "per_column":
                    r = adc_read(v, cells.fs_col[gi], cells.levels_col[gi], ideal)
                elif mode == "calibrated":
                    r = adc_read(v, fs_key, L, ideal)
                else:
                    r = adc_read(v, cells.fs_fixed, L, ideal)
                if partials is not None:
                    for ki, (a, d) in enumerate(cells.col_key):
                        partials.append((gi, p, a, d, r[:, cells.col_keyidx == ki].clone()))
                r = r - cells.leak * nd
                if mode == "calibrated" and cells.conductance:
                    r = r / gain
                r = torch.where(cells.skip[gi], 0.0, r)       # an empty column is known to read 0
                r = torch.where(cells.inv[gi], nd * cells.dmax - r, r)
                acc[n0:n0 + chunk] += pulse_coef[p] * r
    if histograms is not None:
        return np.zeros((N, cells.out))
    y = torch.zeros((N, cells.out + int(cells.ref)), dtype=torch.float64)
    y.index_add_(1, cells.col_out, acc * cells.coef)
    if cells.ref:
        return (y[:, :-1] - y[:, -1:]).numpy()
    if c.mapping == "offset":
        half = float(1 << (w_bits - 1))
        y = y - half * torch.from_numpy(np.asarray(x, np.float64)).sum(1, keepdim=True)
    return y.numpy()
