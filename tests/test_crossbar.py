import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from hamqcore.energy import PRESETS, CrossbarConfig, estimate_energy, simulate_layer
import xbar_reference as ref

G_ON, G_OFF, V, T = 1e-4, 1e-6, 0.5, 1e-8


def test_hand_computed_four_rows():
    cfg = CrossbarConfig(rows=4, cols=4, g_on=G_ON, g_off=G_OFF, v_read=V, t_read=T, adc="ideal",
                         e_wordline=1e-15, e_shift_add=2e-15)
    w = np.array([[1, -1, 0, 1]], np.int8)   # 2-bit weights: one magnitude digit
    x = np.array([[1, 1, 0, 1]], np.int8)    # 1-bit inputs: rows 0, 1, 3 driven
    r = simulate_layer(w, x, cfg, w_bits=2, a_bits=1)
    # positive column: digits 1,0,0,1 -> driven G = 2 g_on + g_off; negative: 0,1,0,0 -> g_on + 2 g_off
    g_pos, g_neg = 2 * G_ON + G_OFF, G_ON + 2 * G_OFF
    assert r.energy["cell"] == pytest.approx(V * V * T * (g_pos + g_neg), rel=1e-12)
    assert r.energy["adc"] == 0.0
    assert r.energy["wordline"] == pytest.approx(1e-15 * 3 * 2)   # 3 driven rows x 2 arrays
    assert r.energy["shift_add"] == pytest.approx(2e-15 * 2)      # 2 conversions
    assert r.conversions == 2 and r.arrays == 2 and r.on_cells == 3 and r.cells == 8
    assert r.mean_current == pytest.approx(V * (g_pos + g_neg) / 2, rel=1e-12)
    assert r.max_current == pytest.approx(V * g_pos, rel=1e-12)
    np.testing.assert_array_equal(r.output, [[1.0]])
    # the multilevel sense amp, by hand
    r = simulate_layer(w, x, CrossbarConfig.preset("neurosim-rram-22nm", rows=4, cols=4, g_on=G_ON, g_off=G_OFF,
                                                    v_read=V, t_read=T), w_bits=2, a_bits=1)
    p = lambda g: 1.8939e-6 * 31 + 0.073 * math.exp(-2.311 * math.log10(0.5 / (g * V)))  # noqa: E731
    assert r.energy["adc"] == pytest.approx((p(g_pos) + p(g_neg)) * T, rel=1e-12)


configs = st.builds(
    lambda rows, cols, cb, mapping, adc, adc_bits: CrossbarConfig(
        rows=rows, cols=cols, cell_bits=cb, mapping=mapping, adc=adc, adc_bits=adc_bits, g_on=G_ON, g_off=G_OFF,
        e_wordline=3e-15, e_shift_add=5e-15),
    rows=st.sampled_from([3, 8, 64, 100, 128]), cols=st.sampled_from([16, 32, 64]),
    cb=st.sampled_from([1, 2, 4]), mapping=st.sampled_from(["differential", "offset"]),
    adc=st.sampled_from(["ideal", "multilevel", "sar"]), adc_bits=st.sampled_from([3, 5, 8]),
)


@given(cfg=configs, w_bits=st.integers(2, 8), a_bits=st.integers(1, 8), signed=st.booleans(),
       out=st.integers(0, 7), k=st.integers(1, 140), n=st.integers(0, 3), seed=st.integers(0, 2**31))
def test_matches_numpy_reference(cfg, w_bits, a_bits, signed, out, k, n, seed):
    rng = np.random.default_rng(seed)
    hi = (1 << (w_bits - 1)) - 1
    w = rng.integers(-hi, hi + 1, size=(out, k)).astype(np.int16)
    lo_x, hi_x = (-(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1) if signed else (0, (1 << a_bits) - 1)
    x = rng.integers(lo_x, hi_x + 1, size=(n, k)).astype(np.int16)
    r = simulate_layer(w, x, cfg, w_bits, a_bits, a_signed=signed, n_threads=1)
    e = ref.simulate(w, x, cfg, w_bits, a_bits, signed)
    for c in e["energy"]:
        assert r.energy[c] == pytest.approx(e["energy"][c], rel=1e-9, abs=1e-30), c
    assert r.conversions == e["conversions"]
    assert r.on_cells == e["on_cells"] and r.cells == e["cells"] and r.col_tiles == e["col_tiles"]
    assert r.mean_current == pytest.approx(e["mean_current"], rel=1e-9, abs=1e-30)
    assert r.max_current == pytest.approx(e["max_current"], rel=1e-9, abs=1e-30)
    np.testing.assert_allclose(r.output, e["y"], rtol=1e-9, atol=1e-9)
    if cfg.adc == "ideal":
        np.testing.assert_array_equal(r.output, x.astype(np.int64) @ w.astype(np.int64).T)
    # the identity: sum of cell energy = V^2 t sum over vectors, pulses and driven rows of sum of cell G
    two = simulate_layer(w, x, cfg, w_bits, a_bits, a_signed=signed, n_threads=2)
    assert two.energy == r.energy and np.array_equal(two.output, r.output)


def test_cell_energy_identity_and_exact_matmul_large():
    rng = np.random.default_rng(0)
    cfg = CrossbarConfig.preset("neurosim-rram-22nm", adc="ideal")
    w = rng.integers(-127, 128, size=(300, 700)).astype(np.int8)
    x = rng.integers(0, 256, size=(40, 700)).astype(np.int16)
    r = simulate_layer(w, x, cfg, 8, 8)
    np.testing.assert_array_equal(r.output, x.astype(np.int64) @ w.astype(np.int64).T)
    # sum over vectors, pulses, driven rows of the row's total cell conductance (over all columns)
    mags = np.abs(w.astype(np.int64))
    digits = np.stack([(mags >> d) & 1 for d in range(7)])          # (7, out, K) ON cells
    row_g = (cfg.g_off * 2 * 7 * w.shape[0] + (cfg.g_on - cfg.g_off) * digits.sum(axis=(0, 1)))  # per row
    driven = np.stack([(x >> p) & 1 for p in range(8)]).sum(axis=(0, 1))  # times each row is driven
    expect = cfg.v_read**2 * cfg.t_read * float((driven * row_g).sum())
    assert r.energy["cell"] == pytest.approx(expect, rel=1e-12)


def test_differential_and_offset_compute_the_same_function():
    rng = np.random.default_rng(1)
    w = rng.integers(-31, 32, size=(20, 300)).astype(np.int8)
    x = rng.integers(-32, 32, size=(9, 300)).astype(np.int8)
    outs = []
    for mapping in ("differential", "offset"):
        for cb in (1, 2, 4):
            cfg = CrossbarConfig(mapping=mapping, cell_bits=cb, adc="ideal")
            outs.append(simulate_layer(w, x, cfg, 6, 6).output)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


def test_adc_quantisation_costs_accuracy_and_clips():
    rng = np.random.default_rng(2)
    w = rng.integers(-127, 128, size=(16, 256)).astype(np.int8)
    x = rng.integers(0, 256, size=(8, 256)).astype(np.int16)
    exact = x.astype(np.int64) @ w.astype(np.int64).T
    errs = []
    for bits in (3, 5, 8):
        y = simulate_layer(w, x, CrossbarConfig(adc="multilevel", adc_bits=bits), 8, 8).output
        errs.append(np.abs(y - exact).mean())
    assert errs[0] > errs[1] > errs[2] == 0.0  # 8 bits cover 128 rows exactly
    # a full scale below the largest digit sum clips: readings saturate, the output shrinks
    clipped = simulate_layer(w, x, CrossbarConfig(adc="multilevel", adc_bits=4, adc_full_scale=16), 8, 8).output
    assert np.abs(clipped).max() < np.abs(exact).max()


def test_lower_hamming_weight_means_less_energy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(32, 512)).astype(np.int16)
    w = rng.integers(-127, 128, size=(64, 512)).astype(np.int16)
    cfg = PRESETS["neurosim-rram-22nm"]
    base = simulate_layer(w, x, cfg, 8, 8)
    low = np.sign(w) * (1 << (np.log2(np.maximum(np.abs(w), 1)).astype(np.int16)))  # nearest lower 2^k: HW 1
    low = (low * (w != 0)).astype(np.int16)
    cheap = simulate_layer(low, x, cfg, 8, 8)
    assert cheap.on_cells < base.on_cells
    for c in ("cell", "adc"):
        assert cheap.energy[c] < base.energy[c]
    assert cheap.total_energy < base.total_energy


def test_conv_path_equals_conv2d_and_grouped_layers():
    torch.manual_seed(0)
    from hamqcore import _torch_energy

    for conv in (torch.nn.Conv2d(6, 8, 3, stride=2, padding=1, dilation=1, groups=2, bias=False),
                 torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4, bias=False, padding_mode="reflect"),
                 torch.nn.Conv1d(3, 5, 5, stride=2, padding=2, bias=False)):
        x = torch.relu(torch.randn(2, conv.in_channels, *(9, 11)[: conv.weight.dim() - 2]))
        w_groups, x_groups, wb, ab, signed, groups = _torch_energy.layer_matrices(conv, x, 8, 8)
        assert groups == conv.groups and not signed
        cfg = CrossbarConfig(adc="ideal")
        ys = [simulate_layer(wg, xg, cfg, wb, ab).output for wg, xg in zip(w_groups, x_groups)]
        # same integers through torch's own convolution
        from hamqcore.quant import quantize_activation, quantize_weight
        qw, _ = quantize_weight(conv.weight, 8)
        qx, _, _ = quantize_activation(x, 8)
        fn = F.conv1d if isinstance(conv, torch.nn.Conv1d) else F.conv2d
        xin = qx.double()
        if conv.padding_mode != "zeros":
            pad = [p for p in reversed(conv.padding) for _ in range(2)]
            xin, padding = F.pad(xin, pad, mode=conv.padding_mode), 0
        else:
            padding = conv.padding
        ref_out = fn(xin, qw.double(), None, conv.stride, padding, conv.dilation, conv.groups)
        ref_cols = ref_out.flatten(2).transpose(1, 2)  # (N, positions, out)
        out_per_group = conv.out_channels // groups
        for g, y in enumerate(ys):
            expect = ref_cols[:, :, g * out_per_group:(g + 1) * out_per_group].reshape(-1, out_per_group)
            np.testing.assert_array_equal(y, expect.numpy())


def test_estimate_energy_report(tmp_path):
    from hamqcore.models import ds_cnn

    torch.manual_seed(0)
    model = ds_cnn("S")
    x = torch.randn(3, 1, 49, 10)
    rep = estimate_energy(model, x)
    assert [l.name for l in rep.layers][:3] == ["conv1", "blocks.0", "blocks.3"]
    assert rep.layers[1].kind == "Conv2d" and rep.layers[1].arrays == 64 * 2  # depthwise: one group per array pair
    assert rep.total_energy == pytest.approx(sum(l.total_energy for l in rep.layers))
    assert 0 < rep.on_fraction < 1 and rep.mean_current > 0
    one = estimate_energy(model, x[:1])
    assert one.total_energy != rep.total_energy  # data-dependent
    assert rep.layers[0].vectors == 25 * 5
    rep.to_json(tmp_path / "e.json")
    rep.to_csv(tmp_path / "e.csv")
    rep.plot(tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 1000
    import json
    d = json.loads((tmp_path / "e.json").read_text())
    assert d["total_energy_j"] == pytest.approx(rep.total_energy) and len(d["layers"]) == len(rep.layers)
    assert len((tmp_path / "e.csv").read_text().splitlines()) == len(rep.layers) + 1
    assert "total per inference" in str(rep)
    with pytest.raises(ValueError, match="no Conv1d, Conv2d or Linear"):
        estimate_energy(torch.nn.ReLU(), x)
    floor = estimate_energy(model, x, zero_weights=True)  # same inputs, every weight 0
    assert floor.on_fraction == 0 and floor.total_energy < rep.total_energy
    assert floor.energy["shift_add"] == rep.energy["shift_add"]  # the same conversions
    assert floor.energy["wordline"] == rep.energy["wordline"]    # the same driven rows


def test_config_errors():
    bad = [
        (dict(rows=0), "rows must be > 0, got 0"), (dict(cols=-1), "cols must be > 0"),
        (dict(cell_bits=3), "cell_bits must be one of 1, 2, 4, got 3"),
        (dict(g_on=1e-6, g_off=1e-5), "g_on must be finite and greater than g_off"),
        (dict(g_off=-1.0), "g_off must be a finite conductance >= 0"), (dict(v_read=0.0), "v_read must be > 0"),
        (dict(t_read=-1e-9), "t_read must be > 0"), (dict(adc_bits=0), "adc_bits must be in 1..16, got 0"),
        (dict(cols_per_adc=0), "cols_per_adc must be >= 1"), (dict(adc_full_scale=-2), "adc_full_scale must be >= 0"),
        (dict(e_wordline=-1.0), "e_wordline must be >= 0"), (dict(e_shift_add=float("nan")), "e_shift_add must be >= 0"),
        (dict(mapping="bipolar"), "mapping must be one of 'differential', 'offset', got 'bipolar'"),
        (dict(adc="flash"), "adc must be one of 'ideal', 'multilevel', 'sar', got 'flash'"),
    ]
    for kwargs, msg in bad:
        with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
            CrossbarConfig(**kwargs)
    with pytest.raises(TypeError, match="rows must be an integer, got 12.5"):
        CrossbarConfig(rows=12.5)
    with pytest.raises(ValueError, match="preset must be one of"):
        CrossbarConfig.preset("pcm-9000")
    with pytest.raises(ValueError, match=r"unknown CrossbarConfig field\(s\) \['row'\]"):
        CrossbarConfig.preset("rram-256", row=3)
    assert CrossbarConfig.preset("rram-256", adc_bits=7).adc_bits == 7
    w, x = np.zeros((2, 3), np.int8), np.zeros((1, 3), np.int8)
    with pytest.raises(ValueError, match=r"cols=4 cannot hold one 8-bit weight \(8 digit columns plus"):
        simulate_layer(w, x, CrossbarConfig(cols=4, mapping="offset"), 8, 8)
    with pytest.raises(ValueError, match="x has 4 columns but w has 3"):
        simulate_layer(w, np.zeros((1, 4), np.int8))
    with pytest.raises(ValueError, match=r"w\[1, 2\] = -8 is outside the range \[-7, 7\] of w_bits=4"):
        simulate_layer(np.array([[0, 0, 0], [0, 0, -8]], np.int8), x, w_bits=4)
    with pytest.raises(ValueError, match=r"x\[0, 1\] = 16 is outside the range \[0, 15\] of unsigned a_bits=4 inputs"):
        simulate_layer(w, np.array([[0, 16, 0]], np.int16), a_bits=4)
    with pytest.raises(ValueError, match=r"x\[0, 0\] = -9 is outside the range \[-8, 7\] of signed a_bits=4"):
        simulate_layer(w, np.array([[-9, 0, 0]], np.int16), a_bits=4)
    with pytest.raises(ValueError, match="w must be a 2-D array, got 1 dimensions"):
        simulate_layer(np.zeros(3, np.int8), x)
    with pytest.raises(TypeError, match="w must be an array of signed integers"):
        simulate_layer(np.zeros((2, 3)), x)
    with pytest.raises(ValueError, match="w_bits must be an integer in 2..16, got 1"):
        simulate_layer(w, x, w_bits=1)
    with pytest.raises(TypeError, match="config must be a CrossbarConfig"):
        simulate_layer(w, x, {"rows": 3})
