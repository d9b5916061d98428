"""A slow, explicit numpy crossbar simulator, written from the reference simulators' sources rather
than from hamqcore's C++: every physical cell is materialised at its position, every column's
conductance is summed over its driven rows pulse by pulse (no approximation), and the energy rules
are transcribed from

* DNN+NeuroSim V1.3 (Inference_pytorch/NeuroSIM: ProcessingUnit.cpp GetColumnResistance,
  MultilevelSenseAmp.cpp / SarADC.cpp GetColumnPower, SubArray.cpp CalculatePower in the
  conventionalParallel branch and the circuits it calls), with the circuits' capacitances as
  NeuroSim's own program computed them (reference_data/neurosim-1.3/golden.json, "caps");
* DNN+NeuroSim V1.4 at its defaults (SRAM: the same files' V1.4 versions), with its program's own
  capacitances, resistances and reference ladder (reference_data/neurosim-1.4/golden.json,
  "constants");
* MNSIM-2.0 (Hardware_Model/Crossbar.py calculate_xbar_read_power / _latency, ADC.py).

tests/test_crossbar.py checks this reference against the programs' own numbers, then hamqcore
against this reference on random layers.
"""
import json
import math
from pathlib import Path

import numpy as np

from hamqcore.crossbar import LADDER_TIE

REF = Path(__file__).resolve().parent / "reference_data"
_CAPS = json.loads((REF / "neurosim-1.3" / "golden.json").read_text())["variants"]
CAPS = {"lp": _CAPS["default"]["caps"], "hp": _CAPS["hp"]["caps"]}
C14 = json.loads((REF / "neurosim-1.4" / "golden.json").read_text())["variants"]["w8a8"]["constants"]


def digits_per_weight(mapping, w_bits, cb):
    if mapping == "offset":
        return -(-w_bits // cb)
    if mapping == "differential":
        return -(-(w_bits - 1) // cb)
    return -(-(w_bits - 1) // cb) + 1  # twos_complement: low bits + a sign column


def cell_matrices(w, cfg, w_bits):
    """Per array type, the K x (out * D) digit matrix in physical column order (weight-major with the
    most significant digit first, or digit-major: every weight's top digit, then the next...), the
    shift-add weight of each of its columns and the output each column belongs to."""
    w = np.asarray(w, np.int64)
    out, K = w.shape
    cb, D = cfg.cell_bits, digits_per_weight(cfg.mapping, w_bits, cfg.cell_bits)
    dmask = (1 << cb) - 1
    half = 1 << (w_bits - 1)
    mats = []
    if cfg.mapping == "offset":
        codes = [(w + half, 1)]
    elif cfg.mapping == "differential":
        codes = [(np.maximum(w, 0), 1), (np.maximum(-w, 0), -1)]
    else:
        codes = [(w & ((1 << w_bits) - 1), 1)]
    for code, sign in codes:
        m = np.zeros((K, out * D), np.int64)
        coef = np.zeros(out * D)
        owner = np.zeros(out * D, np.int64)
        for o in range(out):
            for d in range(D):
                col = (D - 1 - d) * out + o if cfg.column_order == "digit" else o * D + (D - 1 - d)
                owner[col] = o
                if cfg.mapping == "twos_complement" and d == D - 1:
                    m[:, col] = code[o] >> (w_bits - 1)
                    coef[col] = -float(half)
                elif cfg.mapping == "twos_complement":
                    m[:, col] = ((code[o] & (half - 1)) >> (d * cb)) & dmask
                    coef[col] = 2.0 ** (d * cb)
                else:
                    m[:, col] = (code[o] >> (d * cb)) & dmask
                    coef[col] = sign * 2.0 ** (d * cb)
        mats.append((m, coef, owner))
    return mats, D


def tiles(mat, coef, owner, cfg, D, w_bits, floor=False):
    """The arrays of one array type: (row0, digits block, shift-add weights, output index per
    column or -1 for a reference column, each column's position in its array). Reference columns
    sit in the array's last D columns."""
    K, C = mat.shape
    ref = cfg.reference_column
    cols_eff = cfg.cols - (D if ref else 0)
    half = 1 << (w_bits - 1)
    dmask = (1 << cfg.cell_bits) - 1
    out = []
    for r0 in range(0, K, cfg.rows):
        for c0 in range(0, C, cols_eff):
            block = mat[r0:r0 + cfg.rows, c0:c0 + cols_eff]
            bcoef = coef[c0:c0 + cols_eff]
            own = owner[c0:c0 + cols_eff]
            pos = np.arange(block.shape[1])
            if ref:
                refd = np.array([0 if floor else (half >> (d * cfg.cell_bits)) & dmask for d in range(D - 1, -1, -1)])
                block = np.concatenate([block, np.tile(refd, (block.shape[0], 1))], axis=1)
                bcoef = np.concatenate([bcoef, [2.0 ** (d * cfg.cell_bits) for d in range(D - 1, -1, -1)]])
                own = np.concatenate([own, -np.ones(D, np.int64)])
                pos = np.concatenate([pos, cols_eff + np.arange(D)])
            out.append((r0, block, bcoef, own, pos))
    return out


def cell_conductance(cfg, digits, n_used, pos):
    """g of every cell of a block (NeuroSim's GetColumnResistance: device, access, wire by position);
    ``pos`` is each column's place in its array."""
    dmax = (1 << cfg.cell_bits) - 1
    G = cfg.g_off + digits / dmax * (cfg.g_on - cfg.g_off)
    i = np.arange(digits.shape[0])[:, None]
    j = np.asarray(pos)[None, :]
    with np.errstate(divide="ignore"):   # an OFF SRAM cell (neurosim-1.4): G = 0, no current
        r = 1 / G + cfg.r_access + (j + 1) * cfg.r_wire_row + (n_used - i) * cfg.r_wire_col
    return 1 / r


def adc_read(cfg, s, levels, full_scale):
    """The reading of digit sum s by an ADC with ``levels`` levels over [0, full_scale], in steps of
    at least one digit, saturating at the top level; a reading on a level boundary (within LADDER_TIE
    of a step) reads the even level."""
    if cfg.adc == "ideal":
        return float(s)
    step = max(1.0, full_scale / (levels - 1))
    q = s / step
    level = math.floor(q + 0.5 + LADDER_TIE)
    if abs(q + 0.5 - level) <= LADDER_TIE and level % 2:    # on the boundary below an odd level
        level -= 1
    return step * min(levels - 1, level)


# --- NeuroSim V1.3 periphery (SubArray.cpp CalculatePower, conventionalParallel) ------------------

def _dff(c, vdd, num_read, num_dff, per_op, gamma=None):
    e = (c["capInvInput"] + c["capInvOutput"]) * vdd ** 2 * 4 * num_dff
    e += c["capTgGateN"] * vdd ** 2 * 2 * num_dff + c["capTgGateP"] * vdd ** 2 * 2 * num_dff
    m = min(per_op, num_dff)
    e += (c["capTgDrain"] * 3 + c["capInvInput"]) * vdd ** 2 * m
    e += (c["capTgDrain"] + c["capInvOutput"]) * vdd ** 2 * m
    e += (c["capInvInput"] + c["capInvOutput"]) * vdd ** 2 * m
    e *= num_read
    return e * gamma if gamma else e


def _adder(c, vdd, num_bit, num_adder, num_read, delta=0.15):
    ci, co = c["capNandInput"], c["capNandOutput"]
    e = ci * 6 + co * 2 + ci * 7 * (num_bit - 1) + co * 3 * (num_bit - 1)
    e += (co + ci) * 2 + (co + 2 * ci) + (co + 3 * ci) + (co + ci)
    e += (co + 3 * ci) * (num_bit - 1) + (co + ci) * (num_bit - 1) + (co + ci) * 2 * (num_bit - 1)
    return e * vdd ** 2 * num_adder * num_read * delta


def _mux_decoder(d):
    """RowDecoder.cpp CalculatePower (MUX mode) of the column mux's decoder, its capacitance switched
    per read (F; times VDD^2, the reads and epsilon): the same formula in V1.3 and V1.4."""
    nA, nN, nO = int(d["numAddrRow"]), d["numNand"], d["numNor"]
    dec = (d["capInvInput"] + d["capNandInput"] * 2) * (nA // 2) * 2
    dec += (d["capInvInput"] + d["capNorInput"] * nO / 2) * (nA - (nA // 2) * 2)
    dec += (d["capNandOutput"] + d["capNorInput"] * nO / 4) * nN / 4
    dec += d["capNorOutput"] + d["capNandInput"]
    dec += (d["capNandOutput"] + d["capDriverInvInput"]) + (d["capDriverInvOutput"] + d["capDriverInvInput"])
    return dec + d["capDriverInvOutput"]


def neurosim_subarray_read(cfg, nd, D, P):
    """Energy of one subarray read except the sense amps, by component (J)."""
    caps = CAPS[cfg.roadmap]
    vdd, F = caps["tech"]["vdd"], caps["tech"]["featureSize"]
    rows, cols, cpa, levels, vr, vacc = 128, 128, 8, 32, cfg.v_read, 1.1
    cap_bl = rows * 4 * F * 0.2e-15 / 1e-6
    out = {"array": (cap_bl * vr * vr * math.ceil(cols / cpa) + caps["array"]["capRow2"] * vdd * vdd * nd) * cpa}
    s = caps["switch"]
    sw = (s["capTgDrain"] * 2 * vacc ** 2 + s["capTgDrain"] * 5 * vr ** 2
          + (s["capTgGateN"] + s["capTgGateP"]) * 3 * vdd ** 2) * nd * cpa
    out["switch_matrix"] = sw + _dff(caps["dff"], vdd, cpa, rows, rows)
    m = caps["mux"]
    mux = (m["capTgGateN"] * m["numInput"] * vdd ** 2 + m["capTgDrain"] * 2 * m["numInput"] * vr ** 2) * cpa
    out["mux"] = (mux + _mux_decoder(caps["decoder"]) * vdd ** 2 * cpa * 0.05) / P
    out["encoder"] = 0.0
    if cfg.adc == "multilevel":
        e = caps["encoder"]
        ng = math.ceil(math.log2(levels))
        out["encoder"] = ((e["capInvInput"] + e["capInvOutput"]) * (levels + ng)
                          + (e["capNandInput"] + e["capNandOutput"]) * (levels + ng)
                          + (e["capNandLgInput"] + e["capNandLgOutput"]) * ng) * vdd ** 2 * (cols // cpa) * cpa * 0.05
    units, lb, sa = math.ceil(cols / cpa), int(math.log2(levels)), 0.0
    a, f = caps["adder"], caps["shiftadd_dff"]
    if D > 1:
        sa += _adder(a, vdd, lb, units, cpa) + _dff(f, vdd, cpa, (lb + D) * units, (lb + D) * units, 0.5)
    if P > 1:
        nr = cpa // D
        sa += _adder(a, vdd, lb + D, units, nr) + _dff(f, vdd, nr, (lb + D + P) * units, (lb + D + P) * units, 0.5)
    out["shift_add"] = sa
    return out


# --- NeuroSim V1.4 SRAM subarray (SubArray.cpp CalculatePower, SRAM conventionalParallel) -----------

def neurosim14_subarray_read(nd, D, P):
    """Energy of one V1.4 subarray read except the sense amps, by component (J)."""
    c = C14
    vdd, vr = c["tech"]["vdd"], c["tech"]["readVoltage"]
    rows, cpa = int(c["array"]["numRow"]), int(c["array"]["numColMuxed"])
    out = {"array": c["array"]["capRow1"] * vdd ** 2 * nd * cpa}
    s = c["switch"]
    out["switch_matrix"] = ((s["capTgDrain"] * 3 * vr ** 2 + (s["capTgGateN"] + s["capTgGateP"]) * vdd ** 2) * nd * cpa
                            + _dff(c["swdff"], vdd, cpa, rows, rows))
    m = c["mux"]
    mux = (m["capTgGateN"] * m["numInput"] * vdd ** 2 + m["capTgDrain"] * 2 * m["numInput"] * vr ** 2) * cpa
    out["mux"] = mux + _mux_decoder(c["decoder"]) * vdd ** 2 * cpa * 0.05     # not divided by the pulses
    units, lb, sa, a, f = int(c["saw"]["numAdder"]), 5, 0.0, c["saw"], c["sawdff"]
    if D > 1:     # shiftAddWeight.CalculatePower((D - 1) * ceil(numColMuxed / D)), C++ integer division
        nr = (D - 1) * (cpa // D)
        sa += _adder(a, vdd, lb, units, nr) + _dff(f, vdd, nr, (lb + D) * units, (lb + D) * units, 0.5)
    if P > 1:     # shiftAddInput.CalculatePower(ceil(numColMuxed / D))
        nr = cpa // D
        sa += _adder(a, vdd, lb + D, units, nr) + _dff(f, vdd, nr, (lb + D + P) * units, (lb + D + P) * units, 0.5)
    out["shift_add"] = sa
    return out


def _power14(R):
    """MultilevelSenseAmp.cpp GetColumnPower, V1.4, current mode, LSTP 22 nm (W)."""
    if math.isinf(R):
        return 1e-6
    R *= 0.5 / C14["tech"]["readVoltage"]
    if R < 4832:
        p = -2.85373E-11 * R + 9.16744E-07
    elif R < 379269:
        p = -1.63133E-07 * math.log(R) + 2.1687E-06
    else:
        p = -5.8712E-08 * math.log(R) + 8.64648E-07
    return p * 31


def _latency14(R):
    """MultilevelSenseAmp.cpp ColumnLatency_Table, current mode, 22 nm (s)."""
    lat = -1.32118E-10 * math.log(R) + 1.7552E-09 if R < 4832 else 8.02517E-15 * R + 8.51803E-10
    if R > 12.7e3:
        lat += 0.31e-9 / (0.1e6 - 12.7e3) * (R - 12.7e3) * (
            (C14["array"]["columncap"] + C14["sense"]["gcN"] * (len(C14["rref"]) - 2) - 4.5e-15) / 4.5e-15)
    return lat


def neurosim14_conversion(nd):
    """One column's V1.4 sense-amp energy in a read driving nd rows (MultilevelSenseAmp.cpp CalculatePower,
    current mode): its reference ladder as the program built it (golden "rref")."""
    c = C14
    L, shared, vdd, vr = 32, c["sense"]["dumcolshared"], c["tech"]["vdd"], 0.55   # Vread: its 22 nm table
    rref = c["rref"]
    latency = max(_latency14(rref[-1]), _latency14(rref[1]))
    refpower = sum(_power14(r) for r in rref[1:-1]) / shared
    gN, gP, jN, jP = c["sense"]["gcN"], c["sense"]["gcP"], c["sense"]["jcN"], c["sense"]["jcP"]
    peri = c["array"]["capRow1"] / 128 * vdd ** 2 * c["array"]["numRow"]     # reference_energy_peri
    switching = (c["array"]["columncap"] * 2 * (0 + 1 / shared) / 2 * vr ** 2 + peri / shared
                 + (gN * 2 + (jN + gN) / (L - 1) + (jN + gN) / shared) * vr ** 2 + (gP * 2 + gN) * vdd ** 2
                 + (gP * 3 + gN * 3 + (jP + jN) * 3 + jP) * vdd ** 2 + (gP + gN) * vdd ** 2)
    R = math.inf if nd == 0 else (c["array"]["resCellAccess"] + c["array"]["wireResistanceCol"]) / nd
    return switching * (L - 1) + max((_power14(R) + refpower) * latency, 0.0)


def _conversion_time(cfg, L):
    return (math.log2(L) + 1) * 1e-9 if cfg.adc == "sar" else 1e-9


def _column_power(cfg, g_col):
    """GetColumnPower's conductance term at 22 nm (W), R scaled by 0.5 V / V_read."""
    hp = cfg.roadmap == "hp"
    R = (1 / g_col) * 0.5 / cfg.v_read
    if cfg.adc == "sar":
        return (0.084273 * math.exp(-2.311 * math.log10(R))) if hp else (0.072341 * math.exp(-2.303 * math.log10(R)))
    return (0.073 * math.exp(-2.311 * math.log10(R))) if hp else (0.0631 * math.exp(-2.303 * math.log10(R)))


def power_law_exponent(cfg):
    """k in _column_power's P proportional to G^k: exp(-c log10 R) = R^(-c / ln 10), c = 2.311 (HP) or 2.303."""
    return (2.311 if cfg.roadmap == "hp" else 2.303) / math.log(10)


def neurosim_conversion(cfg, g_col, L):
    """One column's sense amp / ADC energy with L levels (MultilevelSenseAmp.cpp / SarADC.cpp
    GetColumnPower at 22 nm, LatencyCol 1 ns)."""
    hp = cfg.roadmap == "hp"
    if g_col == 0:
        p = 1e-6
    elif cfg.adc == "sar":
        p = ((0.7213 * math.log2(L) + 3.3041) if hp else (0.538 * math.log2(L) + 4.3753)) * 1e-6
        p += _column_power(cfg, g_col)
    else:
        p = (1.8939 if hp else 1.7) * (L - 1) * 1e-6 + _column_power(cfg, g_col)
    return p * _conversion_time(cfg, L)


def mean_position_conductance(cfg, d):
    """A cell holding digit d at the array's mean position (the energy model's conductances)."""
    dmax = (1 << cfg.cell_bits) - 1
    G = cfg.g_off + d / dmax * (cfg.g_on - cfg.g_off)
    return 1 / (1 / G + cfg.r_access + (cfg.cols + 1) / 2 * cfg.r_wire_row + (cfg.rows + 1) / 2 * cfg.r_wire_col)


def own_ladder_energy(cfg, n_rows, max_sum, L):
    """One conversion against a column's own reference ladder (NeuroSim V1.4's reference columns,
    one per level boundary, unshared): L - 1 boundary columns at the column's level boundaries."""
    dmax = (1 << cfg.cell_bits) - 1
    g0, gmax = mean_position_conductance(cfg, 0), mean_position_conductance(cfg, dmax)
    u, step = (gmax - g0) / dmax, max_sum / (L - 1)
    return sum(_column_power(cfg, n_rows * g0 + (j + 0.5) * step * u) for j in range(L - 1)) * _conversion_time(cfg, L)


def block_draws(draws, a, r0, n_rows, c0, n_cols, D, out, cfg):
    """The drawn cells (factor, state) of one block of array type ``a`` (rows r0.., mat columns c0..,
    then its reference columns), from ``draws`` ((columns, k), hamqcore's digit-column order
    (a D + d) G + o, G = out + reference column)."""
    ref = cfg.reference_column
    G = out + int(ref)
    idx = []
    for col in range(c0, c0 + n_cols):
        if cfg.column_order == "digit":
            o, d = col % out, D - 1 - col // out
        else:
            o, d = col // D, D - 1 - col % D
        idx.append((a * D + d) * G + o)
    if ref:
        idx += [(a * D + (D - 1 - j)) * G + out for j in range(D)]
    factor, state = (a.T for a in draws[:2])      # (columns, k) -> by row
    return factor[r0:r0 + n_rows][:, idx], state[r0:r0 + n_rows][:, idx]


def simulate(w, x, cfg, w_bits, a_bits, a_signed, floor=False, draws=None):
    w = np.asarray(w, np.int64)
    x = np.asarray(x, np.int64)
    out, K = w.shape
    N = x.shape[0]
    mats, D = cell_matrices(w, cfg, w_bits)
    if floor:
        mats = [(np.zeros_like(m), c, o) for m, c, o in mats]
    cb = cfg.cell_bits
    dmax = (1 << cb) - 1
    half = 1 << (w_bits - 1)
    rpc = cfg.rows_per_conversion or cfg.rows
    xu = x % (1 << a_bits)
    y = np.zeros((N, out))
    ref_total = np.zeros(N)
    comps = dict(cell=0.0, adc=0.0, array=0.0, encoder=0.0, switch_matrix=0.0, mux=0.0, shift_add=0.0, reference=0.0,
                 config=0.0, mask=0.0, subtract=0.0, complement=0.0, gain=0.0, select=0.0)
    inverted_in_group = {}   # (first row of the row tile, first row of the group) -> [rows, inverted columns]
    cnt = dict(conversions=0, idle=0, skipped=0, reads=0, skipped_reads=0, inverted=0, cycles=0, skipped_cycles=0)
    res = np.zeros(17, np.int64)
    sum_g, max_g, on, cells, arrays = 0.0, 0.0, 0, 0, 0
    t_mnsim = cfg.t_read + 0.001 * (0.0002 * (cfg.rows * cfg.cols / 8192) ** 2 + 5e-6 * cfg.rows * cfg.cols / 8192
                                    + 4e-14) * 1e-9
    col_tiles = 0
    cols_eff = cfg.cols - (D if cfg.reference_column else 0)
    for a, (mat, coef, owner) in enumerate(mats):
        blocks = tiles(mat, coef, owner, cfg, D, w_bits, floor)
        col_tiles = sum(1 for b in blocks if b[0] == 0)
        for bi, (r0, block, bcoef, own, pos) in enumerate(blocks):
            arrays += 1
            cells += block.size
            block = block.copy()
            inv = np.zeros(block.shape[1], bool)
            if cfg.complement:   # stored inverted where that leaves fewer ON cells
                inv = ((block != dmax).sum(axis=0) < (block != 0).sum(axis=0))
                block[:, inv] = dmax - block[:, inv]
                cnt["inverted"] += int(inv.sum())
            on += int((block != 0).sum())
            g = cell_conductance(cfg, block, block.shape[0], pos)
            if draws is not None:   # the programmed cells: varied, stuck ON / OFF, drifted
                c0 = (bi % col_tiles) * cols_eff
                n_mat = block.shape[1] - (D if cfg.reference_column else 0)
                f, state = block_draws(draws, a, r0, block.shape[0], c0, n_mat, D, out, cfg)
                level = np.empty(block.shape)       # the level each cell's device holds
                for i, j in np.ndindex(block.shape):
                    s_, d_ = int(state[i, j]), int(block[i, j])
                    if s_ == 1:
                        level[i, j] = dmax                                     # stuck ON
                    elif s_ == 2:
                        level[i, j] = 0                                        # stuck OFF
                    else:                                                      # NeuroSim's Retention
                        sign = {0: 0, 3: 1, 4: -1}[s_]
                        if s_ == 0 and cfg.retention_target is not None:
                            sign = np.sign(cfg.retention_target * dmax - d_)
                        drift = cfg.retention_t > 0 and cfg.retention_v != 0
                        ratio = cfg.retention_t ** (cfg.retention_v * sign) if drift else 1.0
                        level[i, j] = min(max((d_ + 1) * ratio - 1, 0.0), dmax)
                g = f * cell_conductance(cfg, level, block.shape[0], pos)
            groups = list(range(0, block.shape[0], rpc))
            # statics per (group, column): skipped when empty, levels, full scale
            stat = []
            for g0 in groups:
                sub = block[g0:g0 + rpc]
                skip = cfg.skip_empty & ((sub != 0).sum(axis=0) == 0)
                sums = sub.sum(axis=0)
                if cfg.adc_resolution == "per_column":
                    bits = np.array([max(1, min(cfg.adc_bits, math.ceil(math.log2(v + 1)) if v else 1)) for v in sums])
                    fs = sums
                else:
                    bits = np.full(block.shape[1], cfg.adc_bits)
                    fs = np.full(block.shape[1], cfg.adc_full_scale or rpc * dmax)   # the design full scale
                stat.append((skip, 2 ** bits, fs))
                for k in range(block.shape[1]):
                    res[0 if skip[k] else bits[k]] += 1
            # mux cycles each group's read runs: local column c is read in cycle c % m; with
            # skip_empty only cycles holding a converted column (none: the read is not done)
            m = min(cfg.cols_per_adc, cfg.cols)
            cycles = [len({int(pos[k]) % m for k in range(block.shape[1]) if not st[0][k]}) if cfg.skip_empty else m
                      for st in stat]
            switches = [ladder_switches(cfg, st[0], st[2], bcoef, pos, D) for st in stat]
            for g0 in groups:
                entry = inverted_in_group.setdefault((r0, g0), [min(rpc, block.shape[0] - g0), 0])
                entry[1] += int(inv.sum())
            for n in range(N):
                for p in range(a_bits):
                    pc = -(2.0 ** p) if (a_signed and p == a_bits - 1) else 2.0 ** p
                    bits = (xu[n, r0:r0 + block.shape[0]] >> p) & 1
                    for gi, g0 in enumerate(groups):
                        gb = bits[g0:g0 + rpc]
                        nd = int(gb.sum())
                        skip, levels, fs = stat[gi]
                        if cycles[gi]:
                            cnt["reads"] += 1
                            if cfg.model in ("neurosim-1.3", "neurosim-1.4"):
                                comps["select"] += switches[gi] * select_gate_energy(cfg)
                            cnt["cycles"] += cycles[gi]
                            cnt["skipped_cycles"] += m - cycles[gi]
                            if cfg.model == "neurosim-1.3":   # each term is proportional to the cycles run
                                for key, v in neurosim_subarray_read(cfg, nd, D, a_bits).items():
                                    comps[key] += v * cycles[gi] / m
                            elif cfg.model == "neurosim-1.4":
                                for key, v in neurosim14_subarray_read(nd, D, a_bits).items():
                                    comps[key] += v
                        else:
                            cnt["skipped_reads"] += 1
                        for c in range(block.shape[1]):
                            s = int((block[g0:g0 + rpc, c] * gb).sum())
                            reading = adc_read(cfg, s, levels[c], fs[c])
                            if inv[c]:
                                reading = nd * dmax - reading
                            reading *= pc * bcoef[c]
                            if own[c] < 0:
                                ref_total[n] += reading
                            else:
                                y[n, own[c]] += reading
                            if skip[c]:
                                cnt["skipped"] += 1
                                continue
                            gc = float((g[g0:g0 + rpc, c] * gb).sum())
                            cnt["conversions"] += 1
                            cnt["idle"] += nd == 0
                            sum_g += gc
                            max_g = max(max_g, gc)
                            if cfg.model == "neurosim-1.3":
                                comps["adc"] += neurosim_conversion(cfg, gc, levels[c])
                                if (nd and cfg.adc_resolution == "per_column"
                                        and fs[c] > 2 ** cfg.adc_bits - 1):   # the column's own ladder
                                    comps["reference"] += own_ladder_energy(cfg, min(rpc, block.shape[0] - g0),
                                                                            fs[c], levels[c])
                            elif cfg.model == "neurosim-1.4":    # the driven rows alone
                                comps["adc"] += neurosim14_conversion(nd)
                            elif cfg.model == "mnsim-2.0":
                                comps["cell"] += cfg.v_read ** 2 * gc * t_mnsim
                                comps["adc"] += cfg.e_adc
                            else:
                                comps["cell"] += cfg.v_read ** 2 * gc * cfg.t_read
    if cfg.model == "neurosim-1.3":
        comps.update(option_circuits(cfg, cnt, inverted_in_group, N, K, out, D, a_bits))
    elif cfg.model == "neurosim-1.4" and cfg.gain_bits:     # V1.4's Adder.cpp with its own NAND2 caps
        gb = cfg.gain_bits
        comps["gain"] = _adder(C14["saw"], C14["tech"]["vdd"], cfg.adc_bits + gb, gb - 1, cnt["conversions"])
    if cfg.mapping == "offset":
        if cfg.reference_column:   # every array holds a copy of the reference: subtract one
            y -= (ref_total / max(1, col_tiles))[:, None]
        else:                      # the periphery subtracts 2^(b-1) sum(x) digitally
            y -= half * x.sum(axis=1, keepdims=True)
    driven_total = 0
    for n in range(N):            # driven rows per vector, pulse and conversion group
        for p in range(a_bits):
            driven_total += int(((xu[n] >> p) & 1).sum()) if out else 0
    return dict(y=y, energy=comps, conversions=cnt["conversions"], idle_conversions=cnt["idle"],
                skipped_conversions=cnt["skipped"], subarray_reads=cnt["reads"], skipped_reads=cnt["skipped_reads"],
                read_cycles=cnt["cycles"], skipped_cycles=cnt["skipped_cycles"], inverted_columns=cnt["inverted"], resolution_columns=res, driven_rows=driven_total,
                sum_current=cfg.v_read * sum_g, max_current=cfg.v_read * max_g, on_cells=on, cells=cells, arrays=arrays)


def ladder_switches(cfg, skip, sums, bcoef, pos, D):
    """Reference-mux pass gates turned on in one read of one array's conversion group (crossbar.hpp,
    Component select): each sense amp converts its columns (positions u m .. u m + m - 1) in cycle
    order; a column's ladder is its digit position (calibrated references) or, per-column, its own
    when its digit sum exceeds 2^adc_bits - 1 (else the shared one); every change from the previous
    converted column's ladder, cyclically, turns on one gate per reference line."""
    per_column = cfg.adc_resolution == "per_column"
    if not (per_column or (cfg.adc_reference == "calibrated" and D > 1)) or cfg.adc not in ("multilevel", "sar"):
        return 0
    lines = 1 if cfg.adc == "sar" else 2 ** cfg.adc_bits - 1
    m = min(cfg.cols_per_adc, cfg.cols)

    def ladder(k):
        if per_column:
            return ("own", k) if sums[k] > 2 ** cfg.adc_bits - 1 else "shared"
        c = bcoef[k]
        if cfg.mapping == "twos_complement" and c < 0:
            return D - 1
        return round(math.log2(abs(c))) // cfg.cell_bits

    n = 0
    for u in range(-(-cfg.cols // m)):
        order = sorted((int(pos[k]) % m, k) for k in range(len(pos)) if int(pos[k]) // m == u and not skip[k])
        seq = [ladder(k) for _, k in order]
        if len(seq) > 1:
            n += sum(seq[i] != seq[i - 1] for i in range(len(seq)))
    return n * lines


def select_gate_energy(cfg):
    """Mux.cpp Mux::CalculatePower, one pass gate turning on: gate to VDD, two drains to V_read."""
    if cfg.model == "neurosim-1.4":
        m, vdd = C14["mux"], C14["tech"]["vdd"]
        return m["capTgGateN"] * vdd ** 2 + m["capTgDrain"] * 2 * C14["tech"]["readVoltage"] ** 2
    caps = CAPS[cfg.roadmap]
    vdd, mux = caps["tech"]["vdd"], caps["mux"]
    return mux["capTgGateN"] * vdd ** 2 + mux["capTgDrain"] * 2 * cfg.v_read ** 2


def option_circuits(cfg, cnt, inverted_in_group, N, K, out, D, P):
    """The digital circuits of the periphery options and the differential mapping, with NeuroSim's
    DFF.cpp (activity 0.5) and Adder.cpp gate models (crossbar.hpp, Component)."""
    caps = CAPS[cfg.roadmap]
    vdd, f, a = caps["tech"]["vdd"], caps["shiftadd_dff"], caps["adder"]
    m = min(cfg.cols_per_adc, cfg.cols)
    units = math.ceil(cfg.cols / m)
    bits = ((math.ceil(math.log2(cfg.adc_bits)) if cfg.adc_resolution == "per_column" else 0)
            + int(cfg.skip_empty) + int(cfg.complement))
    e = {"config": _dff(f, vdd, cnt["cycles"], bits * units, bits * units, 0.5) if bits else 0.0}
    e["mask"] = (_dff(f, vdd, cnt["reads"], m, m, 0.5) + _dff(f, vdd, cnt["reads"] + cnt["skipped_reads"], 1, 1, 0.5)
                 if cfg.skip_empty else 0.0)
    rpc = cfg.rows_per_conversion or cfg.rows
    groups = sum(math.ceil(min(cfg.rows, K - r0) / rpc) for r0 in range(0, K, cfg.rows))
    e["subtract"] = (_adder(a, vdd, cfg.adc_bits + D + P, 1, N * groups * out)
                     if cfg.mapping == "differential" else 0.0)
    comp = 0.0
    if cfg.complement:
        cb = cfg.cell_bits
        for n_rows, inverted in inverted_in_group.values():
            if inverted:
                comp += _adder(a, vdd, P + math.ceil(math.log2(n_rows)) + cb, n_rows - 1 + (cb > 1), N)
                comp += _adder(a, vdd, cfg.adc_bits + P + cb, inverted, N)
    e["complement"] = comp
    gb = cfg.gain_bits     # a calibrated conductance readout's gain: a shift-add constant multiplier
    e["gain"] = _adder(a, vdd, cfg.adc_bits + gb, gb - 1, cnt["conversions"]) if gb else 0.0
    return e
