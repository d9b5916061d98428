"""What the crossbar reads (hamqcore.readout): the C++ core's functional output where both apply, DNN+NeuroSim
V1.3's own Python readings (tests/reference_data/neurosim-1.3-python), the cells' conductances, variation
and faults, and calibrated ADC references."""
import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hamqcore.crossbar import CrossbarConfig, digit_conductance, drift_levels, simulate_layer, stored_digits
from hamqcore.energy import AdcReferences, calibrate_adc, crossbar_accuracy, crossbar_forward
from hamqcore.quant import quantize_model
from hamqcore.readout import adc_read, minmax_read, mse_full_scale, read_layer

GOLDEN = np.load(Path(__file__).parent / "reference_data" / "neurosim-1.3-python" / "golden.npz")


def _layer(rng, out, k, n, mapping, w_bits, a_bits, signed):
    lo = -(1 << (w_bits - 1)) + (mapping == "differential")
    w = rng.integers(lo, 1 << (w_bits - 1), size=(out, k))
    w[:, : k // 3] = 0                                    # empty columns in some groups
    x = rng.integers(-(1 << (a_bits - 1)) if signed else 0, 1 << (a_bits - 1 if signed else a_bits), size=(n, k))
    x[rng.random((n, k)) < 0.5] = 0
    return w, x


@settings(max_examples=max(60, settings.default.max_examples), deadline=None)  # more under the deep profile
@given(seed=st.integers(0, 2 ** 32 - 1), mapping=st.sampled_from(["offset", "differential", "twos_complement"]),
       cell_bits=st.sampled_from([1, 2, 4]), w_bits=st.integers(2, 8), a_bits=st.integers(1, 8), signed=st.booleans(),
       k=st.integers(1, 300), per_column=st.booleans(), skip=st.booleans(), rpc=st.sampled_from([0, 16, 64]),
       complement=st.booleans(), reference=st.booleans(), full_scale=st.sampled_from([0, 7, 200]),
       conductance=st.booleans(), calibrated=st.booleans())
@example(seed=1, mapping="offset", cell_bits=1, w_bits=5, a_bits=3, signed=False, k=66, per_column=False, skip=True,
         rpc=16, complement=True, reference=False, full_scale=0, conductance=False,
         calibrated=False)                                   # an empty complemented column: nd*dmax
@example(seed=2, mapping="offset", cell_bits=2, w_bits=8, a_bits=8, signed=True, k=200, per_column=True, skip=True,
         rpc=0, complement=True, reference=True, full_scale=0, conductance=True, calibrated=True)
@example(seed=3, mapping="twos_complement", cell_bits=4, w_bits=8, a_bits=4, signed=False, k=129, per_column=False,
         skip=False, rpc=64, complement=True, reference=False, full_scale=7, conductance=False, calibrated=True)
def test_the_dense_model_reproduces_the_cpp_fast_path(seed, mapping, cell_bits, w_bits, a_bits, signed, k,
                                                     per_column, skip, rpc, complement, reference, full_scale,
                                                     conductance, calibrated):
    """Where the C++ popcount path applies (hamqcore.crossbar.core_reads) the dense model and it are the same
    crossbar: equal outputs on every mapping, cell size, grouping and periphery option, with ideal
    digits or conductances, fixed, per-column or calibrated references."""
    kw = dict(mapping=mapping, cell_bits=cell_bits, skip_empty=skip, rows_per_conversion=rpc,
              complement=complement and mapping != "differential", reference_column=reference and mapping == "offset",
              adc_full_scale=full_scale)
    if per_column:
        kw["adc_bits"] = "auto"
    elif calibrated:
        kw["adc_reference"] = "calibrated"
    if conductance and cell_bits <= 2 and not per_column:   # per-column: test_per_column_conductance_...
        kw["readout"] = "conductance"
    cfg = CrossbarConfig.preset("neurosim-1.3", **kw)
    rng = np.random.default_rng(seed)
    w, x = _layer(rng, 7, k, 3, mapping, w_bits, a_bits, signed)
    refs, fs, gain = None, None, None
    if cfg.adc_reference == "calibrated":
        n_cols = len(stored_digits(w, w_bits, cfg)[1])
        D = n_cols // (2 if mapping == "differential" else 1)
        fs, gain = rng.uniform(1.0, 300.0, n_cols), rng.uniform(0.5, 2.0, n_cols)
        if cfg.readout == "digits":
            gain[:] = 1.0
        refs = {(i // D, i % D): (float(v), float(g)) for i, (v, g) in enumerate(zip(fs, gain))}
    want = simulate_layer(w, x, cfg, w_bits, a_bits, a_signed=signed, digit_full_scale=fs,
                          digit_gain=gain if cfg.readout == "conductance" else None).output
    got = read_layer(w, x, cfg, w_bits, a_bits, signed, references=refs)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_per_column_conductance_references_agree(seed):
    """Per-column references of a conductance readout (full scale = the column's nominal current with
    every row driven): the C++ path computes them from the column's digit counts, the dense model from
    its cells (readings exactly on a level boundary: the next test)."""
    rng = np.random.default_rng(seed)
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping=["differential", "offset"][seed % 2], cell_bits=1 + seed % 2,
                                adc_bits="auto", readout="conductance", rows_per_conversion=[0, 32][seed % 2],
                                skip_empty=bool(seed % 3 == 0))
    w, x = _layer(rng, 9, 260, 4, cfg.mapping, 8, 8, False)
    want = simulate_layer(w, x, cfg, 8, 8, a_signed=False).output
    np.testing.assert_allclose(read_layer(w, x, cfg, 8, 8, False), want, rtol=1e-9, atol=1e-6)


def test_a_reading_exactly_on_a_level_boundary_reads_the_even_level():
    """62 identical ON cells under their column's own reference (5-bit: step = 62 g1 / 31 = 2 g1); an
    input driving 31 of them reads 31 g1, exactly the boundary between levels 15 and 16. Both
    implementations sum it in a different float order, so without a rule they took different sides
    (C++ 16, the dense model 15, before the rule); the ladder's tolerance (LADDER_TIE) puts it on the
    boundary and half-to-even reads level 16 in both. 30 driven cells read level 15 (no tie)."""
    from hamqcore.crossbar import LADDER_TIE, digit_conductance
    assert LADDER_TIE == 1e-9
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", cell_bits=1, adc_bits="auto",
                                readout="conductance")
    w = np.ones((1, 62), np.int16)
    x = np.array([[1] * 31 + [0] * 31, [1] * 30 + [0] * 32], np.int16)
    g = np.asarray(digit_conductance(cfg))
    g1 = g[1] / (g[1] - g[0])                  # a digit-1 cell in digit units
    # positive array: level x step minus the leakage; negative array (empty): its leakage, subtracted
    want = np.array([[16 * 2 * g1], [15 * 2 * g1]])
    np.testing.assert_allclose(simulate_layer(w, x, cfg, 2, 1).output, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(read_layer(w, x, cfg, 2, 1, False), want, rtol=1e-12, atol=0)
    # 34 identical cells, 17 driven: the C++ readout's float arithmetic (the step's inverse) lands 4 ulps
    # below the boundary between 15 and 16; within the tolerance it is on it, so level 16 again
    w34, x34 = np.ones((1, 34), np.int16), np.array([[1] * 17 + [0] * 17], np.int16)
    want34 = np.array([[16 * (34 * g1 / 31)]])
    np.testing.assert_allclose(simulate_layer(w34, x34, cfg, 2, 1).output, want34, rtol=1e-12, atol=0)
    np.testing.assert_allclose(read_layer(w34, x34, cfg, 2, 1, False), want34, rtol=1e-12, atol=0)
    # the rule itself: within the tolerance of a boundary, the even level; else the nearest
    from hamqcore.readout import ladder_level
    q = torch.tensor([0.5, 1.5, 2.5, 15.5 - 1e-10, 15.5 + 1e-10, 15.49, 15.51, 3.0], dtype=torch.float64)
    assert ladder_level(q).tolist() == [0.0, 2.0, 2.0, 16.0, 16.0, 15.0, 16.0, 3.0]


@pytest.mark.parametrize("m", [0, 7, 20, 30])
def test_readings_near_a_level_boundary_read_the_double_precision_level(m):
    """The C++ readout decides a level in single precision only farther from a boundary than single
    precision's error bound; nearer, from the double-precision reading. 100 driven 2-bit cells of the
    positive array (37 hold digit 1, 29 digit 2, 34 digit 3) under a calibrated step that puts their
    reading delta above or below the boundary between levels m and m + 1 (|delta| from 2e-9, just past
    the tie tolerance, to 1e-4, where single precision's roundings of a reading near 30 are ~2e-6):
    level m + 1 above, m below, each reading against its hand computation."""
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", cell_bits=2, readout="conductance",
                                adc_reference="calibrated")
    g = np.asarray(digit_conductance(cfg))
    gu = g / ((g[3] - g[0]) / 3)                              # each digit's conductance in digit units
    counts = {1: 37, 2: 29, 3: 34}
    w = np.concatenate([np.full(n, d) for d, n in counts.items()]).astype(np.int16)[None]
    K = w.shape[1]
    x = np.ones((1, K), np.int16)
    v = sum(n * gu[d] for d, n in counts.items())             # the positive column's reading
    leak = K * gu[0]                                          # its OFF-cell leakage, removed after the ADC
    assert v > 100
    neg_level = np.floor(leak + 0.5)                          # the negative array (digits 0, step 1)
    assert abs(leak - np.round(leak)) < 0.4                   # far from its own boundary
    deltas = np.concatenate([[2e-9, 5e-9, 2e-8], np.geomspace(5e-8, 1e-4, 150)])
    for delta in np.concatenate([deltas, -deltas]):
        fs = 31 * v / (m + 0.5 + delta)                        # 5-bit: 31 steps over the full scale
        got = simulate_layer(w, x, cfg, 3, 1, digit_full_scale=np.array([fs, 31.0]),
                             digit_gain=np.ones(2)).output[0, 0]
        level = m + 1 if delta > 0 else m
        want = (fs / 31 * level - leak) - (neg_level - leak)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12), (m, delta, got, want)
    # beyond the full scale (q past 31.5, the boundary to a level the ladder lacks): the top level, 31
    for q in (31.5 - 1e-7, 31.5 + 1e-7, 40.0, 100.0):
        fs = 31 * v / q                                       # a step >= 1: v > 100
        got = simulate_layer(w, x, cfg, 3, 1, digit_full_scale=np.array([fs, 31.0]),
                             digit_gain=np.ones(2)).output[0, 0]
        assert got == pytest.approx((fs / 31 * 31 - leak) - (neg_level - leak), rel=1e-12, abs=1e-12), q


def test_complemented_columns_read_through_calibrated_references():
    """Complemented columns (offset codes near the top: most digits 3, stored inverted) of a conductance
    readout through calibrated references, 4-bit inputs: each pulse's reading is nd (2^b - 1) minus the
    inverted column's, weighted by its pulse; the C++ path and the dense model agree."""
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="offset", cell_bits=2, complement=True,
                                readout="conductance", adc_reference="calibrated")
    rng = np.random.default_rng(11)
    w = rng.integers(90, 128, size=(6, 150)).astype(np.int16)
    x = rng.integers(0, 16, size=(5, 150)).astype(np.int16)
    n_cols = len(stored_digits(w, 8, cfg)[1])
    fs, gain = rng.uniform(20.0, 300.0, n_cols), rng.uniform(0.5, 2.0, n_cols)
    refs = {(0, i): (float(f), float(g)) for i, (f, g) in enumerate(zip(fs, gain))}
    r = simulate_layer(w, x, cfg, 8, 4, digit_full_scale=fs, digit_gain=gain)
    assert r.inverted_columns > 0
    np.testing.assert_allclose(r.output, read_layer(w, x, cfg, 8, 4, False, references=refs), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("mapping", ["offset", "differential"])
def test_an_ideal_adc_reads_the_conductances_less_their_leakage(mapping):
    """A conductance readout under an ideal ADC (the bitline model: no ladder) reads each column's
    conductance sum in digit units, its OFF-cell leakage removed: the C++ path (add_readings) and the
    dense model agree."""
    cfg = CrossbarConfig.preset("bitline", mapping=mapping, cell_bits=2, readout="conductance")
    assert cfg.adc == "ideal"
    rng = np.random.default_rng(13)
    w, x = _layer(rng, 5, 140, 3, mapping, 8, 8, False)
    np.testing.assert_allclose(simulate_layer(w, x, cfg, 8, 8, a_signed=False).output,
                               read_layer(w, x, cfg, 8, 8, False), rtol=1e-9, atol=1e-6)


def test_level_sums_beyond_int32_are_summed_in_double():
    """A device with a small on/off ratio (digit 3 reads about 30 units) in a 2048-row conversion
    group, 16-bit inputs and a 16-bit ADC: a column's levels, weighted 2^p over 16 pulses, sum past
    2^31; the C++ readout sums them in double there (int32 elsewhere), and agrees with the dense model."""
    cfg = CrossbarConfig.preset("mnsim-2.0", mapping="offset", rows=2048, cols=64, cell_bits=2, adc_bits=16,
                                readout="conductance", g_on=1e-4, g_off=0.9e-4, r_access=0.0, adc_full_scale=1)
    rng = np.random.default_rng(5)
    w = rng.integers(100, 128, size=(3, 2048)).astype(np.int16)       # high digits of every column near 3
    x = rng.integers(1 << 15, 1 << 16, size=(2, 2048)).astype(np.int32)
    # the top digit column (offset codes 228..255: every cell holds 3) of the first input, unit step:
    # pulse p reads its nd_p driven cells' conductance, level round(nd_p g_3) (at most 65535)
    g = np.asarray(digit_conductance(cfg))
    g3 = g[3] / ((g[3] - g[0]) / 3)
    nd = [int(((x[0] >> p) & 1).sum()) for p in range(16)]
    assert sum(2 ** p * min(np.floor(n * g3 + 0.5), 65535) for p, n in enumerate(nd)) > 2 ** 31
    want = read_layer(w, x, cfg, 8, 16, False)
    got = simulate_layer(w, x, cfg, 8, 16, a_signed=False, energy=False).output
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def _golden_config(cell_bits, adc_bits):
    # NeuroSim's Python device: on/off ratio 150 (6 kOhm / 900 kOhm), no access transistor or wire
    # resistance (its remainderQ is linear in the digit), 128-row subarrays, offset codes
    return CrossbarConfig.preset("mnsim-2.0", mapping="offset", rows=128, cols=128, cell_bits=cell_bits,
                                 adc_bits=adc_bits, readout="conductance", adc_reference="minmax", g_on=1 / 6e3,
                                 g_off=1 / 900e3, r_access=0.0, r_wire_row=0.0, r_wire_col=0.0)


def _assert_neurosim_readings(kind, cell_bits, adc_bits, cfg, theirs, is_tie):
    """Every partial-sum reading NeuroSim V1.3's Python made (``theirs``, its loop order: input bit,
    subarray, digit) equals hamqcore's under ``cfg`` (its readings are (1 - 1/150) x hamqcore's digit
    units), but on exact level boundaries: ``is_tie(xb, d, V)`` (driven inputs, digits, the element
    indices) shows by exact integer arithmetic that a differing reading is one (a floor of an exact
    level, decided by float rounding on either side), and it is one step off."""
    codes = GOLDEN[f"{kind}_codes"].astype(np.int64).reshape(GOLDEN[f"{kind}_codes"].shape[0], -1)
    a = GOLDEN[f"{kind}_a"]
    x = a if kind == "linear" else a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])   # 1x1 conv: one row per pixel
    parts = []
    read_layer(codes - 128, x, cfg, 8, 8, False, partials=parts)
    ours = {(g, p, d): r.numpy() for g, p, _, d, r in parts}
    D, r_off = 8 // cell_bits, 150
    assert theirs.shape[0] == 8 * 2 * D == len(ours)
    i = ties = 0
    for z in range(8):                      # NeuroSim's loop order: input bit, subarray, digit
        for s in range(2):
            for k in range(D):
                t = theirs[i]
                i += 1
                if kind == "conv":
                    t = t.transpose(0, 2, 3, 1).reshape(-1, t.shape[1])
                o = ours[(s, z, k)] * (1 - 1 / r_off)
                bad = ~np.isclose(o, t, rtol=1e-9, atol=0)
                if bad.any():
                    xb = (x[:, s * 128:(s + 1) * 128] >> z) & 1
                    d = (codes[:, s * 128:(s + 1) * 128] >> (k * cell_bits)) & ((1 << cell_bits) - 1)
                    assert is_tie(xb, d)[bad].all()
                    step = (t.max() - t.min()) / (2 ** adc_bits - 1)   # the top reading is level 2^bits - 1
                    np.testing.assert_allclose(np.abs(o - t)[bad], step, rtol=1e-9)
                    ties += int(bad.sum())
    assert ties <= 0.01 * theirs.size


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("cell_bits", [1, 2])
@pytest.mark.parametrize("adc_bits", [3, 4, 5, 6])
def test_minmax_readings_are_neurosim_pythons_own(kind, cell_bits, adc_bits):
    """Every partial-sum reading of NeuroSim V1.3's Python (QLinear / QConv2d, inference=1: bit-serial
    inputs, 128-row subarrays, digit slices, LinearQuantizeOut) equals hamqcore's under
    adc_reference="minmax", readout="conductance", but on exact level boundaries."""
    r_off, dmax = 150, (1 << cell_bits) - 1

    def is_tie(xb, d):
        # (r - 1) x reading = (r - 1) sum(x d) + dmax sum(x), an integer per element
        V = (r_off - 1) * (xb @ d.T) + dmax * xb.sum(1, keepdims=True)
        return (V - V.min()) * 2 ** adc_bits % (V.max() - V.min()) == 0

    _assert_neurosim_readings(kind, cell_bits, adc_bits, _golden_config(cell_bits, adc_bits),
                              GOLDEN[f"{kind}_cb{cell_bits}_adc{adc_bits}"], is_tie)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("cell_bits", [1, 2])
@pytest.mark.parametrize("target", [0.0, 0.5, 1.0])
def test_retention_drift_is_neurosim_pythons_own(kind, cell_bits, target):
    """NeuroSim V1.3's Python with fixed-direction retention drift (utee/wage_quantizer.py Retention,
    detect=1, t = 1e4, v = 0.02, towards target 0, 0.5, 1; make_golden.py): every reading equals
    hamqcore's under retention_t / retention_v / retention_target, but on exact level boundaries.
    Where NeuroSim's rule and hamqcore's could differ they do not here, and the test shows it: every
    subarray slice spans the device range (NeuroSim clamps to the slice's min and max, hamqcore to
    [0, dmax]; its target is (max - min) x target), and no drift reaches half a cell range (NeuroSim
    extracts the next digit from the drifted one: round((X - drifted) / 2^cell_bits))."""
    cfg = dataclasses.replace(_golden_config(cell_bits, 5), retention_t=1e4, retention_v=0.02,
                              retention_target=target)
    dmax = (1 << cell_bits) - 1
    codes = GOLDEN[f"{kind}_codes"].astype(np.int64).reshape(GOLDEN[f"{kind}_codes"].shape[0], -1)
    for s in range(2):
        for k in range(8 // cell_bits):
            d = (codes[:, s * 128:(s + 1) * 128] >> (k * cell_bits)) & dmax
            assert d.min() == 0 and d.max() == dmax
    level = drift_levels(cfg)[0]
    assert np.abs(level - np.arange(dmax + 1)).max() < (dmax + 1) / 2
    assert not np.array_equal(level, np.arange(dmax + 1))       # it drifts

    def is_tie(xb, d):
        # a reading is sum_v n_v c_v over the levels' counts n_v (driven cells holding digit v), with
        # incommensurable cell values c_v: on a boundary exactly when 2^bits (n - n_min) is an integer
        # multiple of (n_max - n_min), the counts of the tensor's smallest and largest readings
        n = np.stack([xb @ (d == v).T for v in range(dmax + 1)], -1)
        raw = n @ (level * 149 + dmax)
        lo, hi = n.reshape(-1, dmax + 1)[np.argmin(raw)], n.reshape(-1, dmax + 1)[np.argmax(raw)]
        num, den = (n - lo) * 2 ** 5, hi - lo
        j = int(np.argmax(np.abs(den)))
        return np.all(num == (num[..., j] // den[j])[..., None] * den, -1) & (num[..., j] % den[j] == 0)

    _assert_neurosim_readings(kind, cell_bits, 5, cfg, GOLDEN[f"{kind}_cb{cell_bits}_adc5_ret{target}"], is_tie)


def _digital(w, x, w_bits, mapping="offset"):
    return (x.astype(np.float64) @ w.T.astype(np.float64))


def test_conductance_readout_of_a_linear_device_is_the_digital_product():
    """Cells without series resistance are linear in the digit: with an ideal ADC the conductance
    readout, its leakage removed, is the integer product; and the varied model tends to it as the
    variation goes to 0 (the ideal model is the zero-variation limit)."""
    rng = np.random.default_rng(0)
    w, x = _layer(rng, 9, 150, 4, "offset", 8, 8, False)
    lin = dict(model="bitline", readout="conductance", r_access=0.0, r_wire_row=0.0, r_wire_col=0.0)
    exact = read_layer(w, x, CrossbarConfig.preset("bitline", **lin), 8, 8, False)
    np.testing.assert_allclose(exact, _digital(w, x, 8), rtol=1e-9, atol=1e-6)
    prev, scale = None, float(np.abs(exact).max())
    for sigma in (1e-2, 1e-4, 1e-6):
        varied = read_layer(w, x, CrossbarConfig.preset("bitline", g_variation=sigma, seed=1, **lin), 8, 8, False)
        err = float(np.abs(varied - exact).max()) / scale
        assert err < 10 * sigma and (prev is None or err < prev / 10)
        prev = err


def test_access_resistance_makes_the_digits_nonlinear():
    """NeuroSim's 1T1R cell (R_access = 1.5 kOhm in series): a driven digit-1 cell reads more than one
    unit when the unit is set by digit 3 (the cell's full swing), as the conductances say."""
    cfg = CrossbarConfig(readout="conductance", adc="sar", adc_bits=5)
    g = digit_conductance(cfg)
    one = (g[1] - g[0]) / ((g[3] - g[0]) / 3)
    assert one == pytest.approx(3 * (g[1] - g[0]) / (g[3] - g[0]), rel=1e-6, abs=0) and one > 1.1
    w = np.full((1, 1), -127, np.int64)     # offset code 1: digits (1, 0, 0, 0)
    ideal = CrossbarConfig.preset("bitline", readout="conductance")
    gi = digit_conductance(ideal)
    y = read_layer(w, np.ones((1, 1), np.int64), ideal, 8, 1, False)
    # one driven cell holding digit 1 in the lowest digit column, the others digit 0; offset 128 x 1 removed
    assert float(y[0, 0]) == pytest.approx(3 * (gi[1] - gi[0]) / (gi[3] - gi[0]) - 128, rel=1e-6, abs=0)


def test_faults_and_variation_are_seeded_per_cell():
    rng = np.random.default_rng(1)
    w, x = _layer(rng, 6, 100, 3, "offset", 8, 8, False)
    base = dict(readout="conductance", g_variation=0.1)
    a = read_layer(w, x, CrossbarConfig.preset("bitline", seed=3, **base), 8, 8, False, key="l1")
    assert np.array_equal(a, read_layer(w, x, CrossbarConfig.preset("bitline", seed=3, **base), 8, 8, False, key="l1"))
    assert not np.array_equal(a, read_layer(w, x, CrossbarConfig.preset("bitline", seed=4, **base), 8, 8, False,
                                            key="l1"))
    assert not np.array_equal(a, read_layer(w, x, CrossbarConfig.preset("bitline", seed=3, **base), 8, 8, False,
                                            key="l2"))
    # every cell stuck ON: each digit column reads dmax per driven row; stuck OFF: 0 (the offset remains)
    on = read_layer(w, x, CrossbarConfig.preset("bitline", stuck_on=1.0), 8, 8, False)
    np.testing.assert_allclose(on, np.repeat(x.sum(1, keepdims=True) * 255.0 - 128 * x.sum(1, keepdims=True), 6, 1))
    off = read_layer(w, x, CrossbarConfig.preset("bitline", stuck_off=1.0), 8, 8, False)
    np.testing.assert_allclose(off, np.repeat(-128.0 * x.sum(1, keepdims=True), 6, 1))


@pytest.mark.parametrize("drift", [{}, dict(retention_t=1e4, retention_v=0.05),
                                   dict(retention_t=1e4, retention_v=0.05, retention_target=0.3)])
def test_the_energy_path_charges_the_cells_the_functional_path_reads(drift):
    """Variation, faults and retention drift: the energy path charges the very cells the functional
    path reads (one draw, hamqcore.crossbar.cell_draws). Under the bitline accounting the energy is
    V^2 t_read times the sum over every conversion of the column's conductance, which the dense model's
    cells give directly (several row tiles and conversion groups); nominal cells, other seeds or keys
    give other energies."""
    from hamqcore.readout import LayerCells

    rng = np.random.default_rng(5)
    w, x = _layer(rng, 9, 300, 4, "offset", 8, 8, False)
    # no wires: every cell sits at the functional path's mean position (the energy path places each)
    cfg = CrossbarConfig.preset("bitline", readout="conductance", g_variation=0.3, stuck_on=0.02, stuck_off=0.05,
                                rows_per_conversion=16, seed=7, r_wire_row=0.0, r_wire_col=0.0, **drift)
    cells = LayerCells(w, cfg, 8, key="conv1/0")
    g_sum = sum(float((((x[:, r0:r1] >> p) & 1).astype(np.float64) @ cells.cells[gi].numpy()).sum())
                for gi, (r0, r1) in enumerate(cells.groups) for p in range(8))
    want = cfg.v_read ** 2 * cfg.t_read * cells.unit * g_sum
    e = simulate_layer(w, x, cfg, 8, 8, output=False, key="conv1/0").energy["cell"]
    assert e == pytest.approx(want, rel=1e-12, abs=0)
    nominal = simulate_layer(w, x, CrossbarConfig.preset("bitline", rows_per_conversion=16, r_wire_row=0.0,
                                                          r_wire_col=0.0), 8, 8).energy["cell"]
    for other in (simulate_layer(w, x, cfg, 8, 8, output=False, key="conv2/0"),
                  simulate_layer(w, x, dataclasses.replace(cfg, seed=8), 8, 8, output=False, key="conv1/0")):
        assert other.energy["cell"] != e and abs(other.energy["cell"] / e - 1) < 0.1 and e != nominal
    with pytest.raises(ValueError, match="read_layer"):       # the core's output would be the nominal cells'
        simulate_layer(w, x, cfg, 8, 8, key="conv1/0")


def test_retention_drift_by_hand_and_its_zero_drift_limit():
    """NeuroSim's Retention rule, level by level: (d + 1) t^(s v) - 1 clamped to [0, dmax]; towards a
    target the sign is sign(target dmax - d); random signs are -1, 0, +1 about equally often, seeded.
    No drift (t = 1, or v = 0) reads the nominal cells exactly, and a vanishing drift tends to them."""
    from hamqcore.crossbar import CELL_STATES, cell_draws, drifts

    cfg = CrossbarConfig(readout="conductance", retention_t=100.0, retention_v=0.1)
    r = 100.0 ** 0.1
    lv = drift_levels(cfg)
    assert list(CELL_STATES) == ["programmed", "stuck_on", "stuck_off", "drift_up", "drift_down"]
    np.testing.assert_allclose(lv, [[0, 1, 2, 3], [3, 3, 3, 3], [0, 0, 0, 0],
                                    [r - 1, 2 * r - 1, 3, 3],                    # 3r - 1 > 3: clamped
                                    [0, 2 / r - 1, 3 / r - 1, 4 / r - 1]], rtol=1e-15)
    towards = drift_levels(dataclasses.replace(cfg, retention_target=0.5))[0]   # target level 1.5
    np.testing.assert_allclose(towards, [r - 1, 2 * r - 1, 3 / r - 1, 4 / r - 1], rtol=1e-15)
    assert drift_levels(dataclasses.replace(cfg, retention_target=1.0))[0][3] == 3.0   # at the target: stays
    with warnings.catch_warnings():        # a drift beyond float range saturates the cell, silently
        warnings.simplefilter("error")
        huge = drift_levels(dataclasses.replace(cfg, retention_t=1e300, retention_v=5.0))
    np.testing.assert_array_equal(huge[3:], [[3, 3, 3, 3], [0, 0, 0, 0]])
    draws = cell_draws(cfg, 300, 200, "l")
    share = np.bincount(draws.state.ravel(), minlength=5) / draws.state.size
    np.testing.assert_allclose(share[[0, 3, 4]], 1 / 3, atol=0.01)
    assert share[1] == share[2] == 0 and np.array_equal(draws.factor, np.ones((300, 200)))
    assert np.array_equal(cell_draws(cfg, 300, 200, "l").state, draws.state)
    assert not np.array_equal(cell_draws(cfg, 300, 200, "m").state, draws.state)
    assert not drifts(dataclasses.replace(cfg, retention_t=1.0)) and not drifts(dataclasses.replace(cfg, retention_v=0.0))
    assert cell_draws(dataclasses.replace(cfg, retention_t=1.0), 3, 3) is None
    rng = np.random.default_rng(2)
    w, x = _layer(rng, 7, 150, 3, "offset", 8, 8, False)
    base = CrossbarConfig.preset("bitline", readout="conductance")
    exact = read_layer(w, x, base, 8, 8, False)
    prev, scale = None, float(np.abs(exact).max())
    for v in (1e-2, 1e-4, 1e-6):
        drifted = read_layer(w, x, dataclasses.replace(base, retention_t=10.0, retention_v=v, seed=3), 8, 8, False)
        err = float(np.abs(drifted - exact).max()) / scale
        assert err < 100 * v and (prev is None or err < prev / 10)
        prev = err


@pytest.mark.parametrize("roadmap", ["lp", "hp"])
def test_cells_stuck_everywhere_cost_what_those_digits_cost(roadmap):
    """Every cell stuck ON costs what the weights whose every digit is dmax cost (the offset code of
    2^(b-1) - 1 is all ones), every cell stuck OFF what the floor costs, under NeuroSim's power law
    (wires included: each stuck cell at its own position); a vanishing variation is the nominal energy."""
    rng = np.random.default_rng(6)
    w, x = _layer(rng, 12, 200, 3, "offset", 8, 8, False)
    cfg = CrossbarConfig.preset("neurosim-1.3", roadmap=roadmap)
    e = {k: simulate_layer(w, x, dataclasses.replace(cfg, **kw), 8, 8, output=False).energy for k, kw in
         (("on", dict(stuck_on=1.0)), ("off", dict(stuck_off=1.0)),
          ("tiny", dict(readout="conductance", g_variation=1e-9)))}
    top = simulate_layer(np.full_like(w, 127), x, cfg, 8, 8).energy
    floor = simulate_layer(w, x, cfg, 8, 8, floor=True).energy
    nominal = simulate_layer(w, x, cfg, 8, 8).energy
    # the sense amp's power law is corrected per column, not per conversion: (k - 1) = 1.7e-4 / 3.7e-3
    tol = 1e-5 if roadmap == "lp" else 2e-4
    for got, want in ((e["on"], top), (e["off"], floor), (e["tiny"], nominal)):
        for comp, v in want.items():
            assert got[comp] == pytest.approx(v, rel=tol if comp == "adc" else 1e-12, abs=0), comp


def test_energy_under_variation_follows_the_layers_through_the_model_walk():
    """estimate_energy draws each layer's cells with the key crossbar_forward reads them with
    ("name/first group"): its energy is simulate_layer's with that key."""
    from hamqcore.layers import layer_matrices
    from hamqcore.energy import estimate_energy

    torch.manual_seed(0)
    m = quantize_model(nn.Sequential(nn.Linear(40, 12), nn.ReLU(), nn.Linear(12, 5)), w_bits=8, a_bits=8).eval()
    x = torch.rand(6, 40)
    cfg = CrossbarConfig.preset("neurosim-1.3", stuck_on=0.05, seed=2)
    rep = estimate_energy(m, x, cfg)
    h = m[1](m[0](x))
    for row, mod, xin in zip(rep.layers, (m[0], m[2]), (x, h)):
        w_groups, x_groups, wb, ab, signed, _ = layer_matrices(mod, xin, 8, 8, row.name)
        want = simulate_layer(w_groups[0], x_groups[0], cfg, wb, ab, a_signed=signed, output=False,
                              key=f"{row.name}/0")
        assert row.total_energy == pytest.approx(want.total_energy / 6, rel=1e-12, abs=0), row.name
        other = simulate_layer(w_groups[0], x_groups[0], cfg, wb, ab, a_signed=signed, output=False, key="x/0")
        assert other.total_energy != want.total_energy


def test_adc_formulas_by_hand():
    v = torch.tensor([0.0, 0.4, 1.6, 2.5, 40.0], dtype=torch.float64)
    # 4 levels over [0, 9]: step 3, readings 0, 0, 3, 3, 9 (saturated)
    assert adc_read(v, 9.0, 4, False).tolist() == [0.0, 0.0, 3.0, 3.0, 9.0]
    # no step finer than one unit: 32 levels over [0, 10] read rounded units
    assert adc_read(v, 10.0, 32, False).tolist() == [0.0, 0.0, 2.0, 2.0, 31.0]
    # LinearQuantizeOut: 2 bits over [0, 40]: step 10, floor
    assert minmax_read(v, 2).tolist() == [0.0, 0.0, 0.0, 0.0, 30.0]
    assert minmax_read(torch.full((3,), 5.0, dtype=torch.float64), 3).tolist() == [5.0, 5.0, 5.0]


def _mse(values, counts, fs, levels):
    step = max(1.0, fs / (levels - 1))
    return float((counts * (step * np.minimum(np.round(values / step), levels - 1) - values) ** 2).sum())


def test_mse_full_scale_by_hand():
    per = 8   # histogram bins per unit; a bin's readings sit at its centre
    h = np.zeros(100 * per, np.int64)
    h[3 * per] = 1000                     # every reading 3.0625: a unit step reads them best
    assert mse_full_scale(h, 32) == 31.0
    h[40 * per] = 1                       # outliers: the choice is the brute-force minimum over full scales
    h[99 * per] = 1
    centres = (np.arange(len(h)) + 0.5) / per
    brute = min(_mse(centres, h, fs, 32) for fs in np.arange(31, 100, 0.01))
    assert _mse(centres, h, mse_full_scale(h, 32), 32) <= brute * (1 + 1e-3)
    h2 = np.zeros(100 * per, np.int64)
    h2[np.arange(0, 100 * per, per)] = 1  # uniform on 0..99 with 4 levels
    brute = min(_mse(centres, h2, fs, 4) for fs in np.arange(3, 100, 0.01))
    assert _mse(centres, h2, mse_full_scale(h2, 4), 4) <= brute * (1 + 1e-3)
    h3 = np.zeros(100 * per, np.int64)
    h3[np.arange(0, 46 * per, per)] = 1   # uniform on 0..45 with 32 levels: the best step lies in (1, 2)
    top = centres[46 * per - per]         # the search's range: up to the largest value seen (documented)
    brute_fs = min(np.arange(31, top, 0.001), key=lambda fs: _mse(centres, h3, fs, 32))
    got = mse_full_scale(h3, 32)
    assert 31 < brute_fs < 62 and _mse(centres, h3, got, 32) <= _mse(centres, h3, brute_fs, 32) * (1 + 1e-3)
    assert mse_full_scale(np.zeros(10 * per, np.int64), 32) == 31.0     # nothing seen: the unit step
    assert mse_full_scale(np.zeros(10 * per, np.int64), 4) == 3.0


def _model(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    m = quantize_model(m, w_bits=8, a_bits=8)
    x = torch.randn(16, 3, 6, 6)
    m(x)
    return m.eval(), x


def test_calibrated_references_are_fixed_and_checked():
    model, x = _model()
    cfg = CrossbarConfig(adc_reference="calibrated")
    with pytest.raises(ValueError, match="calibrate_adc"):
        crossbar_forward(model, x, cfg)
    refs = calibrate_adc(model, x[:8], cfg)
    assert isinstance(refs, AdcReferences) and set(refs.full_scale) == {"0", "3"}
    assert all(fs >= 31 and gain == 1.0 for layer in refs.full_scale.values() for fs, gain in layer.values())
    with torch.no_grad():
        ref = model(x)
    out = crossbar_forward(model, x, cfg, references=refs)
    plain = crossbar_forward(model, x, CrossbarConfig())
    # calibrated references read this model closer to its digital output than the fixed full scale
    assert float((out - ref).pow(2).mean()) < float((plain - ref).pow(2).mean())
    with pytest.raises(ValueError, match="another configuration"):
        crossbar_forward(model, x, CrossbarConfig(adc_reference="calibrated", cell_bits=1), references=refs)
    with pytest.raises(ValueError, match="adc_reference='calibrated'"):
        calibrate_adc(model, x, CrossbarConfig())
    y = ref.argmax(1)
    hits = int((crossbar_forward(model, x, cfg, references=refs).argmax(1) == y).sum())
    assert crossbar_accuracy(model, x, y, cfg, batch=5, references=refs) == hits / len(y)


@pytest.mark.parametrize("kw, match", [
    (dict(adc_reference="middle"), "adc_reference must be one of"),
    (dict(readout="current"), "readout must be one of"),
    (dict(g_variation=0.1), "needs readout='conductance'"),
    (dict(readout="conductance", g_variation=-1.0), "g_variation must be a finite number"),
    (dict(readout="conductance", g_variation=float("nan")), "g_variation must be a finite number"),
    (dict(stuck_on=1.5), "stuck_on must be a finite number"),
    (dict(stuck_on=0.6, stuck_off=0.5), "stuck_on \\+ stuck_off"),
    (dict(adc_reference="minmax", adc_bits="auto"), "needs adc_resolution='fixed'"),
    (dict(seed=-1), "seed must be an integer"),
    (dict(retention_t=10.0, retention_v=0.1), "needs readout='conductance'"),
    (dict(readout="conductance", retention_v=0.1), "it needs retention_t > 0"),
    (dict(readout="conductance", retention_t=-1.0), "retention_t must be a finite number >= 0"),
    (dict(readout="conductance", retention_t=10.0, retention_v=float("inf")), "retention_v must be a finite number"),
    (dict(readout="conductance", retention_t=10.0, retention_v=0.1, retention_target=1.5),
     "retention_target must be None"),
    (dict(readout="conductance", retention_target=-0.1), "retention_target must be a finite number >= 0"),
])
def test_bad_functional_options(kw, match):
    with pytest.raises(ValueError, match=match):
        CrossbarConfig(**kw)
    with pytest.raises(TypeError, match="g_variation must be a number"):
        CrossbarConfig(readout="conductance", g_variation="0.1")
    with pytest.raises(ValueError, match="adc='ideal' has none"):
        CrossbarConfig.preset("bitline", adc_reference="minmax")


@pytest.mark.parametrize("kw", [dict(readout="conductance"), dict(readout="conductance", adc_bits="auto"),
                                dict(adc_reference="calibrated"), dict(readout="conductance", adc_reference="calibrated")])
def test_fast_path_readings_do_not_depend_on_the_thread_count(kw):
    """The C++ functional output with conductances, per-column or calibrated references: the same bits
    on 1, 2 and 4 threads."""
    rng = np.random.default_rng(7)
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", skip_empty=True, **kw)
    w, x = _layer(rng, 33, 300, 37, "differential", 8, 8, False)
    fs = gain = None
    if cfg.adc_reference == "calibrated":
        fs = rng.uniform(20.0, 200.0, 8)
        gain = rng.uniform(0.8, 1.3, 8) if cfg.readout == "conductance" else None
    outs = [simulate_layer(w, x, cfg, 8, 8, n_threads=t, digit_full_scale=fs, digit_gain=gain).output
            for t in (1, 2, 4)]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_conductance_gains_are_the_chips_8_bit_constants():
    """A conductance readout's gain is held as the chip holds it: its inverse a GAIN_BITS-bit constant
    with GAIN_BITS - 1 fractional bits (the energy path charges that multiplier, component "gain")."""
    from hamqcore.crossbar import GAIN_BITS
    from hamqcore.readout import quantized_gain

    model, x = _model()
    cfg = CrossbarConfig(adc_reference="calibrated", readout="conductance", mapping="differential")
    refs = calibrate_adc(model, x[:8], cfg)
    frac = 2 ** (GAIN_BITS - 1)
    gains = [g for layer in refs.full_scale.values() for _, g in layer.values()]
    assert any(g > 1.01 for g in gains)    # the access transistor: a digit 1 reads above 1 unit
    for g in gains:
        assert (frac / g) == pytest.approx(round(frac / g), abs=1e-9) and 1 <= round(frac / g) < 2 ** GAIN_BITS
    assert quantized_gain(1.2, 1.0) == pytest.approx(1 / (round(128 / 1.2) / 128), rel=1e-6, abs=0)
    assert quantized_gain(0.0, 5.0) == quantized_gain(5.0, 0.0) == 1.0
    assert quantized_gain(1.0, 1e6) == 1.0 / ((2 ** GAIN_BITS - 1) / frac)   # clamped to the format
    assert quantized_gain(1e6, 1.0) == frac           # the other end: the inverse's least step, 1 / frac


def _dense_histograms(w, x, cfg, w_bits, a_bits, signed):
    from hamqcore.readout import Histograms

    h = Histograms()
    read_layer(w, x, cfg, w_bits, a_bits, signed, histograms=h)
    return h


@settings(max_examples=max(40, settings.default.max_examples), deadline=None)  # more under the deep profile
@given(seed=st.integers(0, 2 ** 32 - 1), mapping=st.sampled_from(["offset", "differential", "twos_complement"]),
       cell_bits=st.sampled_from([1, 2, 4]), w_bits=st.integers(2, 8), a_bits=st.integers(1, 8), signed=st.booleans(),
       k=st.integers(1, 300), n=st.integers(0, 5), skip=st.booleans(), rpc=st.sampled_from([0, 16, 64]),
       complement=st.booleans(), reference=st.booleans(), conductance=st.booleans())
@example(seed=1, mapping="offset", cell_bits=1, w_bits=5, a_bits=3, signed=False, k=66, n=3, skip=True, rpc=16,
         complement=True, reference=False, conductance=False)       # complemented and empty columns
@example(seed=2, mapping="offset", cell_bits=2, w_bits=8, a_bits=8, signed=True, k=200, n=4, skip=True, rpc=0,
         complement=False, reference=True, conductance=True)        # reference columns, two row tiles
@example(seed=3, mapping="twos_complement", cell_bits=4, w_bits=8, a_bits=4, signed=False, k=129, n=2, skip=False,
         rpc=64, complement=True, reference=False, conductance=False)   # 4-bit digits, conversion groups
@example(seed=4, mapping="differential", cell_bits=2, w_bits=8, a_bits=8, signed=False, k=300, n=0, skip=True,
         rpc=0, complement=False, reference=False, conductance=True)    # no input vector
def test_calibration_histograms_from_the_cpp_core_are_the_dense_models(seed, mapping, cell_bits, w_bits, a_bits,
                                                                      signed, k, n, skip, rpc, complement, reference,
                                                                      conductance):
    """Calibration's histograms of the ADC inputs and its gain sums, from the C++ popcounts
    (crossbar.conversion_histograms) and from the dense model (read_layer(histograms=...)), per digit
    column: the same counts (ideal digits: integer readings, the same bins; conductances: the two
    sum a column in different orders, so a reading within an ulp of a bin edge may land in the
    neighbouring bin), the same sum of S^2 (integers) and of (reading - leakage) x S to rounding."""
    from hamqcore.crossbar import conversion_histograms
    from hamqcore.readout import HIST_BINS_PER_UNIT

    kw = dict(mapping=mapping, cell_bits=cell_bits, skip_empty=skip, rows_per_conversion=rpc,
              complement=complement and mapping != "differential", reference_column=reference and mapping == "offset",
              adc_reference="calibrated")
    if conductance and cell_bits <= 2:
        kw["readout"] = "conductance"
    cfg = CrossbarConfig.preset("neurosim-1.3", **kw)
    w, x = _layer(np.random.default_rng(seed), 7, k, n, mapping, w_bits, a_bits, signed)
    counts, vs, ss = conversion_histograms(w, x, cfg, w_bits, a_bits, signed, HIST_BINS_PER_UNIT)
    dense = _dense_histograms(w, x, cfg, w_bits, a_bits, signed)
    assert counts.shape[:2] == vs.shape == ss.shape and set(dense.counts) == set(np.ndindex(*vs.shape))
    for key in np.ndindex(*vs.shape):
        got, want = counts[key], dense.counts[key]
        size = max(len(got), len(want))
        got, want = np.pad(got, (0, size - len(got))), np.pad(want, (0, size - len(want)))
        assert got.sum() == want.sum()
        if cfg.readout == "digits":
            assert np.array_equal(got, want), key
        else:
            assert np.abs(np.cumsum(got - want)).sum() <= 2, key
        assert ss[key] == dense.ss.get(key, 0.0)
        assert vs[key] == pytest.approx(dense.vs.get(key, 0.0), rel=1e-12, abs=1e-9)


def test_calibration_histograms_do_not_depend_on_the_thread_count():
    from hamqcore.crossbar import conversion_histograms

    rng = np.random.default_rng(11)
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", skip_empty=True, readout="conductance",
                                adc_reference="calibrated")
    w, x = _layer(rng, 40, 300, 37, "differential", 8, 8, False)
    runs = [conversion_histograms(w, x, cfg, 8, 8, False, 8, n_threads=t) for t in (1, 2, 4)]
    for other in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], other))


def test_calibration_from_the_cpp_core_chooses_the_dense_models_references(monkeypatch):
    """calibrate_adc on a model with a depthwise (packed) convolution, a convolution and a Linear layer:
    the references from the C++ core's histograms are the dense model's, bit for bit."""
    import hamqcore.energy as energy

    torch.manual_seed(3)
    m = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    m = quantize_model(m, w_bits=8, a_bits=8)
    x = torch.randn(12, 4, 6, 6)
    m(x)
    m.eval()
    for kw in (dict(readout="conductance", mapping="differential", skip_empty=True), dict(complement=True)):
        cfg = CrossbarConfig(adc_reference="calibrated", **kw)
        fast = calibrate_adc(m, x, cfg)
        with monkeypatch.context() as mp:
            dense_read = energy.read_module

            def read(mod, xx, config, name="", references=None, histograms=None, n_threads=None):
                if histograms is None:
                    return dense_read(mod, xx, config, name, references, None, n_threads)
                with monkeypatch.context() as inner:
                    inner.setattr(energy, "core_reads", lambda c: False)
                    return dense_read(mod, xx, config, name, references, histograms, n_threads)

            mp.setattr(energy, "read_module", read)
            dense = calibrate_adc(m, x, cfg)
        assert fast.full_scale == dense.full_scale
        assert set(fast.full_scale) == {"0", "2", "5"}


def test_calibration_histograms_bad_input():
    from hamqcore.crossbar import _simulator

    cfg = CrossbarConfig(adc_reference="calibrated")
    w, x = np.zeros((2, 3), np.int64), np.zeros((1, 3), np.int64)
    sim = _simulator(cfg)
    with pytest.raises(ValueError, match="histogram_bins_per_unit must be in"):
        sim.simulate(w, x, 8, 8, False, None, False, False, None, False, None, -1.0)
    with pytest.raises(ValueError, match="needs output=False"):
        sim.simulate(w, x, 8, 8, False, None, False, True, None, False, None, 8.0)
    with pytest.raises(ValueError, match="floor=True"):
        sim.simulate(w, x, 8, 8, False, None, True, False, None, False, None, 8.0)


@pytest.mark.parametrize("kw", [dict(), dict(readout="conductance", adc_bits="auto", skip_empty=True),
                                dict(readout="conductance", adc_reference="calibrated", complement=False),
                                dict(complement=True, rows_per_conversion=32, adc_reference="calibrated"),
                                dict(preset="mnsim-2.0"), dict(preset="bitline")])
def test_the_output_alone_is_the_output_computed_with_energy(kw):
    """simulate_layer(energy=False), what crossbar_forward runs: the same output bits without the
    conductance sums, power law and wire deviation; its energies and currents NaN, never a number."""
    kw = dict(kw)
    preset = kw.pop("preset", "neurosim-1.3")
    if preset == "neurosim-1.3":
        kw.setdefault("mapping", "differential" if "complement" not in kw else "offset")
    cfg = CrossbarConfig.preset(preset, **kw)
    rng = np.random.default_rng(5)
    w, x = _layer(rng, 20, 260, 9, cfg.mapping, 8, 8, False)
    fs = gain = None
    if cfg.adc_reference == "calibrated":
        n_cols = len(stored_digits(w, 8, cfg)[1])
        fs = rng.uniform(20.0, 200.0, n_cols)
        gain = rng.uniform(0.8, 1.3, n_cols) if cfg.readout == "conductance" else None
    both = simulate_layer(w, x, cfg, 8, 8, digit_full_scale=fs, digit_gain=gain)
    alone = simulate_layer(w, x, cfg, 8, 8, digit_full_scale=fs, digit_gain=gain, energy=False)
    assert np.array_equal(both.output, alone.output)
    assert both.total_energy > 0 and all(np.isnan(v) for v in alone.energy.values())
    assert np.isnan(alone.max_current) and alone.conversions == both.conversions
    with pytest.raises(ValueError, match="needs output=True"):
        simulate_layer(w, x, cfg, 8, 8, output=False, energy=False)
    with pytest.raises(TypeError, match="energy must be True or False"):
        simulate_layer(w, x, cfg, 8, 8, energy=1)
