"""A slow numpy crossbar simulator written straight from the model in hamqcore.energy's docs:
every physical column is materialised (reference columns replicated per array) and every
column's conductance is summed over its driven rows, pulse by pulse."""
import math

import numpy as np


def adc_energy(cfg, g):
    L = 2 ** cfg.adc_bits
    if cfg.adc == "ideal":
        return 0.0
    dyn = math.exp(-2.311 * math.log10(0.5 / (g * cfg.v_read))) if g > 0 else 0.0
    if cfg.adc == "multilevel":
        return (1.8939e-6 * (L - 1) + 0.073 * dyn) * cfg.t_read
    return ((0.7213 * math.log2(L) + 3.3041) * 1e-6 + 0.084273 * dyn) * (math.log2(L) + 1) * 1e-9


def adc_read(cfg, s):
    if cfg.adc == "ideal":
        return float(s)
    L = 2 ** cfg.adc_bits
    fs = cfg.adc_full_scale or cfg.rows * (2**cfg.cell_bits - 1)
    if fs <= L - 1:
        return float(s)
    step = fs / (L - 1)
    return step * min(L - 1, round(s / step))


def simulate(w, x, cfg, w_bits, a_bits, a_signed):
    w = np.asarray(w, dtype=np.int64)
    x = np.asarray(x, dtype=np.int64)
    out, K = w.shape
    cb, R = cfg.cell_bits, cfg.rows
    diff = cfg.mapping == "differential"
    m = w_bits - 1 if diff else w_bits
    D = -(-m // cb)
    half = 1 << (w_bits - 1)
    per_array = cfg.cols // D - (0 if diff else 1)
    col_tiles = -(-out // per_array) if out else 0
    dmax = 2**cb - 1
    # physical columns: (digits over K rows, output index or 'ref', signed digit weight)
    columns = []
    for o in range(out):
        for arr in ([0, 1] if diff else [0]):
            for d in range(D):
                if diff:
                    code = np.where(w[o] > 0, w[o], 0) if arr == 0 else np.where(w[o] < 0, -w[o], 0)
                else:
                    code = w[o] + half
                digits = (code >> (d * cb)) & dmax
                columns.append((digits, o, (-1 if arr else 1) * 2 ** (d * cb)))
    if not diff:
        for _ in range(col_tiles):
            for d in range(D):
                digits = (np.full(K, half) >> (d * cb)) & dmax
                columns.append((digits, "ref", 2 ** (d * cb)))
    G = [cfg.g_off + dg[0] / dmax * (cfg.g_on - cfg.g_off) for dg in columns]
    T = -(-K // R)
    N = x.shape[0]
    y = np.zeros((N, out))
    e = dict(cell=0.0, adc=0.0, wordline=0.0, shift_add=0.0)
    conversions, sum_i, max_i, on = 0, 0.0, 0.0, 0
    xu = x % (1 << a_bits)
    arrays_per_tile = col_tiles * (2 if diff else 1)
    for n in range(N):
        ref_total = 0.0
        for p in range(a_bits):
            coef = -(2**p) if (a_signed and p == a_bits - 1) else 2**p
            bits = (xu[n] >> p) & 1
            for t in range(T):
                rows = np.zeros(K, bool)
                rows[t * R:(t + 1) * R] = True
                driven = rows & (bits == 1)
                nd = int(driven.sum())
                e["wordline"] += cfg.e_wordline * nd * arrays_per_tile
                for (digits, o, dw), g in zip(columns, G):
                    gcol = float(g[driven].sum())
                    s = int(digits[driven].sum())
                    e["cell"] += cfg.v_read * cfg.v_read * gcol * cfg.t_read
                    e["adc"] += adc_energy(cfg, gcol)
                    e["shift_add"] += cfg.e_shift_add
                    conversions += 1
                    sum_i += cfg.v_read * gcol
                    max_i = max(max_i, cfg.v_read * gcol)
                    reading = coef * dw * adc_read(cfg, s)
                    if o == "ref":
                        ref_total += reading
                    else:
                        y[n, o] += reading
        if not diff and col_tiles:
            y[n] -= ref_total / col_tiles  # every array holds a copy; subtract one
    on = sum(int((dg[0] != 0).sum()) for dg in columns)
    cells = len(columns) * K
    return dict(y=y, energy=e, conversions=conversions, mean_current=sum_i / conversions if conversions else 0.0,
                max_current=max_i, on_cells=on, cells=cells, col_tiles=col_tiles)
