"""crossbar_forward: a model computed through the crossbar's ADC readings."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import crossbar_forward, simulate_module
from hamqcore.quant import quantize_model


def _model(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2, bias=False),
                      nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    m = quantize_model(m, w_bits=6, a_bits=5)
    x = torch.randn(6, 3, 8, 8)
    m(x)                               # initialise the steps and activation ranges
    return m.eval(), x


@pytest.mark.parametrize("mapping", ["differential", "offset", "twos_complement"])
def test_an_exact_adc_gives_the_digital_output(mapping):
    model, x = _model()
    exact = CrossbarConfig.preset("bitline", mapping=mapping, adc_bits=12, rows=64)
    with torch.no_grad():
        ref = model(x)
    out = crossbar_forward(model, x, exact)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    assert model.training is False and not any(m._forward_hooks for m in model.modules())


def test_a_coarse_adc_shows_in_the_output():
    model, x = _model(1)
    lossy = CrossbarConfig.preset("neurosim-1.3", mapping="differential")   # 32 levels for 128 rows of 2-bit cells
    first = model[0]
    with torch.no_grad():
        ref = model(x)
    out = crossbar_forward(model, x, lossy)
    assert float((out - ref).abs().max()) > 1e-3 * float(ref.abs().max())
    # the first layer's output is the readings times the steps, plus the bias
    seen = {}
    h = model[1].register_forward_pre_hook(lambda m, a: seen.setdefault("y", a[0]))  # the ReLU sees it
    crossbar_forward(model, x, lossy)
    h.remove()
    r = simulate_module(first, x, lossy, output=True)
    _, sx, _ = first.input_integers(x)
    _, sw = first.weight_integers()
    want = torch.from_numpy(r.output).double() * float(sx) * sw.reshape(1, -1).double()
    want = want.reshape(6, -1, 8).transpose(1, 2).reshape(seen["y"].shape) + first.bias.detach().double().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(seen["y"].numpy(), want.float().numpy(), rtol=1e-6, atol=1e-6)


def test_bad_input():
    model, x = _model()
    with pytest.raises(TypeError, match="config must be a CrossbarConfig"):
        crossbar_forward(model, x, "neurosim-1.3")
    with pytest.raises(ValueError, match="no quantized layer"):
        crossbar_forward(nn.Linear(3, 2), torch.zeros(1, 3), CrossbarConfig())


def test_cheapest_config_searches_on_the_crossbar():
    from hamqcore.energy import cheapest_config, crossbar_accuracy

    torch.manual_seed(0)
    model = quantize_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)))
    x = torch.rand(48, 1, 8, 8)
    model(x)
    y = model.eval()(x).argmax(1)                      # labels the digital model gets right
    base = CrossbarConfig.preset("neurosim-1.3", mapping="differential")
    space = {"adc_bits": (None, "auto"), "skip_empty": (False, True), "complement": (False, True)}
    res = cheapest_config(model, x, y, base, 0.0, space, energy_inputs=8)
    assert len(res.points) == 4 and res.skipped and "complement applies to mappings" in res.skipped[0][1]
    assert res.best.energy == min(p.energy for p in res.points)   # target 0: the cheapest of all
    strict = cheapest_config(model, x, y, base, 1.0, space, energy_inputs=8)
    exact = [p for p in strict.points if p.accuracy == 1.0]
    assert (strict.best is None) == (not exact)
    if exact:
        assert strict.best.energy == min(p.energy for p in exact)
        assert crossbar_accuracy(model, x, y, strict.best.config) == 1.0
        assert strict.report.total_energy == pytest.approx(strict.best.energy, rel=1e-6, abs=0)
    with pytest.raises(ValueError, match="accuracy_target must be a fraction"):
        cheapest_config(model, x, y, base, 1.5)
    with pytest.raises(ValueError, match="unknown CrossbarConfig field"):
        cheapest_config(model, x, y, base, 0.5, {"adc_bitz": (3,)})


def test_cheapest_config_edges():
    """The default space, calibrated configurations (calibrated once each on the given inputs, their
    accuracy the crossbar's with those references), duplicate configurations searched once, a target
    nothing meets (no choice, no report) and the labels' checks."""
    from hamqcore.energy import DEFAULT_SPACE, calibrate_adc, cheapest_config, crossbar_accuracy, estimate_energy

    torch.manual_seed(0)
    model = quantize_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)))
    x = torch.rand(32, 1, 8, 8)
    model(x)
    y = model.eval()(x).argmax(1)
    base = CrossbarConfig.preset("neurosim-1.3", mapping="differential")
    res = cheapest_config(model, x, y, base, 0.0, energy_inputs=4)          # DEFAULT_SPACE
    assert len(res.points) == len(DEFAULT_SPACE["adc_bits"]) * len(DEFAULT_SPACE["skip_empty"]) * \
        len(DEFAULT_SPACE["rows_per_conversion"])
    assert {p.config.rows_per_conversion for p in res.points} == {0, 64, 32}
    for p in res.points[:3]:                  # each point's energy is its own configuration's
        assert p.energy == estimate_energy(model, x[:4], p.config).total_energy
    with pytest.raises(TypeError, match="^base must be a CrossbarConfig"):
        cheapest_config(model, x, y, "neurosim-1.3", 0.5)
    with pytest.raises(ValueError, match="^x must hold at least one example"):
        cheapest_config(model, x[:0], y[:0], base, 0.5)
    # the base's own values again (None, 5; False, False): each configuration searched once
    dup = cheapest_config(model, x, y, base, 0.0, {"adc_bits": (None, 5, "auto"), "skip_empty": (False, False)},
                          energy_inputs=4)
    assert len(dup.points) == 2 and len({p.config for p in dup.points}) == 2
    assert dup.points[0].config == base and dup.points[1].config == CrossbarConfig.preset(
        "neurosim-1.3", mapping="differential", adc_bits="auto")
    # calibrated references: calibrated on `calibration`, the accuracy the crossbar's with them
    space = {"adc_reference": ("calibrated",), "skip_empty": (False, True)}
    with pytest.raises(ValueError, match="^the search space holds adc_reference='calibrated' configurations: "
                                         r"pass calibration= \(inputs to calibrate their references on\)$"):
        cheapest_config(model, x, y, base, 0.0, space)
    cal = cheapest_config(model, x, y, base, 0.0, space, energy_inputs=4, calibration=x[:8])
    for p in cal.points:
        refs = calibrate_adc(model, x[:8], p.config)
        assert p.accuracy == crossbar_accuracy(model, x, y, p.config, references=refs)
    # a target nothing meets: no choice and no report, every point still listed
    wrong = (y + 1) % 4                                   # labels the model never gives
    none = cheapest_config(model, x, wrong, base, 0.5, {"skip_empty": (False, True)}, energy_inputs=4)
    assert none.best is None and none.report is None and len(none.points) == 2
    assert all(p.accuracy < 0.5 for p in none.points)
    with pytest.raises(ValueError, match=r"^y must be a tensor of one label per input \(32\), got \[0, 1\]$"):
        cheapest_config(model, x, [0, 1], base, 0.5)
    with pytest.raises(ValueError, match=r"one label per input \(32\), got torch.Size\(\[31\]\)"):
        cheapest_config(model, x, y[:31], base, 0.5)


def test_simulate_module_is_the_layer_on_the_crossbar():
    """simulate_module: a plain layer's weights on w_bits's grid and its inputs on a_bits's (signed
    where they are), every group, equal to simulate_layer of the same integers; the layer's name in
    its refusals."""
    from hamqcore.crossbar import simulate_layer
    from hamqcore.layers import input_integers, layer_integers

    torch.manual_seed(0)
    lin = nn.Linear(24, 6)
    x = torch.randn(5, 24)                                 # signed inputs
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential")
    for wb, ab in ((8, 8), (4, 6)):
        r = simulate_module(lin, x, cfg, wb, ab)
        w_int, _ = layer_integers(lin, wb)
        xq, _, _, signed = input_integers(lin, x, ab)
        assert signed
        want = simulate_layer(w_int, xq.numpy().astype(np.int16), cfg, wb, ab, a_signed=True)
        np.testing.assert_array_equal(r.output, want.output)
        assert r.energy == pytest.approx(want.energy, rel=1e-12)
    assert not np.array_equal(simulate_module(lin, x, cfg, 8, 8).output, simulate_module(lin, x, cfg, 4, 8).output)
    assert simulate_module(lin, x, cfg, output=False).output is None
    np.testing.assert_array_equal(simulate_module(lin, x, cfg).output, simulate_module(lin, x, cfg, 8, 8).output)
    assert simulate_module(lin, x, cfg).energy == simulate_module(lin, x, cfg, 8, 8).energy   # the defaults: 8, 8
    conv = nn.Conv2d(4, 6, 3, groups=2)
    xc = torch.rand(2, 4, 5, 5)
    rc = simulate_module(conv, xc, cfg)
    assert rc.output.shape == (2 * 3 * 3, 6) and rc.n_vectors == 2 * 3 * 3      # per group
    floor = simulate_module(conv, xc, cfg, floor=True, output=False)
    assert floor.total_energy < rc.total_energy
    bad = nn.Linear(4, 2)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer 'fc9' has 1 non-finite weight"):
        simulate_module(bad, torch.rand(1, 4), cfg, name="fc9")
    with pytest.raises(ValueError, match="layer 'fc9': its input holds NaN"):
        simulate_module(lin, torch.full((1, 24), float("nan")), cfg, name="fc9")


def test_estimate_energy_report_fields_and_layer_selection():
    """The report says what was measured: its batch, widths, scope and floor flag; each row its layer's
    kind, weight shape, input vectors per inference and the widths it stores; ``layers=`` maps only
    the layers it names (fnmatch patterns), the others counted as left out by the caller."""
    from hamqcore.energy import estimate_energy

    model, x = _model()
    full = estimate_energy(model, x)
    assert (full.batch, full.w_bits, full.a_bits, full.floor, full.scope, full.floorplan) == (6, 8, 8, False,
                                                                                              "subarray", None)
    assert [r.kind for r in full.layers] == ["QConv2d", "QConv2d", "QLinear"]
    assert [r.shape for r in full.layers] == [[8, 3, 3, 3], [8, 4, 3, 3], [5, 128]]
    assert [r.vectors for r in full.layers] == [64.0, 16.0, 1.0]        # positions per image, whatever the batch
    assert [(r.w_bits, r.a_bits) for r in full.layers] == [(6, 5)] * 3  # the layers' own quantizers
    assert estimate_energy(model, x[:2]).layers[0].vectors == 64.0
    plain = estimate_energy(nn.Sequential(nn.Linear(6, 3)), torch.randn(4, 6), w_bits=5, a_bits=7)
    assert (plain.w_bits, plain.a_bits) == (5, 7) and (plain.layers[0].w_bits, plain.layers[0].a_bits) == (5, 7)
    floor = estimate_energy(model, x, floor=True)
    assert floor.floor is True and floor.total_energy < full.total_energy
    some = estimate_energy(model, x, layers=["0", "5"])
    assert [r.name for r in some.layers] == ["0", "5"]
    assert [r.energy for r in some.layers] == [full.layers[0].energy, full.layers[2].energy]
    assert {name for name, _, _ in some.coverage.excluded} == {"2.weight"}
    assert some.coverage.uncovered == []
    with pytest.raises(ValueError, match="^model has no Conv1d, Conv2d or Linear layer to map onto the crossbar$"):
        estimate_energy(nn.Sequential(nn.ReLU()), x)
    for kw, name in (({"w_bits": "8"}, "w_bits"), ({"a_bits": 8.5}, "a_bits"), ({"scope": 1}, "scope")):
        with pytest.raises(TypeError, match=f"^{name} must be"):
            estimate_energy(model, x, **kw)


def test_energy_report_outputs_say_what_the_report_holds(tmp_path):
    """to_dict / to_json / to_csv and the printed table carry the report's own values: every field
    against the report's attributes and the layers' sums, the CSV and the table parsed back."""
    import csv
    import json

    from hamqcore.energy import estimate_energy

    model, x = _model()
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", skip_empty=True, adc_bits="auto")
    r = estimate_energy(model, x, cfg)
    d = r.to_dict()
    assert (d["model"], d["mapping"], d["scope"], d["floorplan"]) == ("neurosim-1.3", "differential", "subarray", None)
    assert d["config"] == cfg.to_dict() and d["coverage"] == r.coverage.to_dict()
    assert (d["w_bits"], d["a_bits"], d["batch"], d["floor"]) == (8, 8, 6, False)
    assert d["total_energy_j"] == pytest.approx(sum(l.total_energy for l in r.layers), rel=1e-12)
    assert d["energy_j"] == {c: pytest.approx(sum(l.energy[c] for l in r.layers), rel=1e-12) for c in r.components}
    assert (d["on_fraction"], d["mean_current_a"], d["conversions"]) == (r.on_fraction, r.mean_current, r.conversions)
    assert d["latency_s"] == pytest.approx(sum(l.latency for l in r.layers), rel=1e-12) and d["latency_s"] > 0
    assert d["resolution_columns"] == r.resolution_columns and sum(d["resolution_columns"]) > 0
    assert [dl["name"] for dl in d["layers"]] == ["0", "2", "5"]
    for dl, l in zip(d["layers"], r.layers):
        assert (dl["kind"], dl["shape"], dl["vectors"], dl["energy"]) == (l.kind, l.shape, l.vectors, l.energy)
        assert (dl["total_energy"], dl["on_fraction"], dl["utilization"]) == (l.total_energy, l.on_fraction,
                                                                              l.utilization)
        assert dl["resolution_columns"] == [int(v) for v in l.resolution_columns] and "output" not in dl
    r.to_json(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(d))
    r.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["name"] for row in rows] == [l.name for l in r.layers]
    for row, l in zip(rows, r.layers):
        assert (row["kind"], row["shape"]) == (l.kind, "x".join(map(str, l.shape)))
        for k in ("vectors", "on_fraction", "mean_current", "max_current", "conversions", "idle_conversions",
                  "latency"):
            assert float(row[k]) == pytest.approx(float(getattr(l, k)), rel=1e-12), k
        assert [int(row[k]) for k in ("arrays", "row_tiles", "col_tiles")] == [l.arrays, l.row_tiles, l.col_tiles]
        assert {c: float(row[f"e_{c}"]) for c in r.components} == pytest.approx(l.energy, rel=1e-12)
        assert float(row["e_total"]) == pytest.approx(l.total_energy, rel=1e-12)
    text = str(r).splitlines()
    assert text[0] == "accounting model " + cfg.describe()
    lines = r.component_lines
    assert text[1].split()[-2:] == ["total", "nJ"] and len(text) == 3 + len(r.layers) + 2
    for line, l in zip(text[3:], r.layers):
        f = line.split()
        assert f[:4] == [l.name, "x".join(map(str, l.shape)), f"{l.w_bits}/{l.a_bits}", str(l.arrays)]
        assert [float(v) for v in f[4:7]] == pytest.approx([100 * l.utilization, 100 * l.on_fraction,
                                                            l.mean_current * 1e6], abs=5e-3)
        assert [float(v) for v in f[7:]] == pytest.approx(
            [sum(l.energy[m] for m in ms) * 1e9 for _, ms in lines] + [l.total_energy * 1e9], abs=5e-5)
    f = text[-1].split()
    assert f[:4] == ["total", "per", "inference", str(sum(l.arrays for l in r.layers))]
    assert [float(v) for v in f[4:]] == pytest.approx(
        [100 * r.on_fraction, r.mean_current * 1e6] + [sum(r.energy[m] for m in ms) * 1e9 for _, ms in lines]
        + [r.total_energy * 1e9], abs=5e-3)
    floor = estimate_energy(model, x, cfg, floor=True)
    assert str(floor).splitlines()[0].endswith(" (floor: every cell OFF)") and floor.to_dict()["floor"] is True


def test_calibrate_adc_and_read_module_by_hand():
    """calibrate_adc's references of a layer are the dense model's MSE clipping points and
    least-squares gains of its conversions at the configuration's ADC levels (the first layer: its
    input is the batch itself); read_module reads through them, gains included, as the dense model
    does; the references record the configuration and how many inputs they saw."""
    from hamqcore.energy import calibrate_adc, check_references, read_module
    from hamqcore.layers import layer_matrices
    from hamqcore.readout import Histograms, read_layer

    model, x = _model()
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", readout="conductance",
                                adc_reference="calibrated")
    refs = calibrate_adc(model, x[:4], cfg)
    assert refs.inputs == 4 and refs.config == cfg and set(refs.full_scale) == {"0", "2", "5"}
    (w,), (xq,), wb, ab, signed, _ = layer_matrices(model[0], x[:4], 8, 8, "0")
    h = Histograms()
    read_layer(w, xq, cfg, wb, ab, signed, key="0/0", histograms=h)
    want_refs = h.references(1 << cfg.adc_bits)
    assert refs.full_scale["0"].keys() == want_refs.keys()
    for k in want_refs:
        assert refs.full_scale["0"][k] == pytest.approx(want_refs[k], rel=1e-9)
    assert any(abs(g - 1.0) > 1e-3 for _, g in refs.full_scale["0"].values())   # the gains do work here
    got = read_module(model[0], x[:4], cfg, "0", references=refs)
    want = read_layer(w, xq, cfg, wb, ab, signed, key="0/0", references=refs.layer("0"))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)
    with pytest.raises(ValueError, match=r"^adc_reference='calibrated' needs references: refs = "
                                         r"hamqcore\.energy\.calibrate_adc\(model, calibration_inputs, config\), "
                                         r"then pass references=refs$"):
        check_references(None, cfg)
    with pytest.raises(TypeError, match="^references must be AdcReferences \\(calibrate_adc\\), got dict$"):
        check_references({}, cfg)
    other = CrossbarConfig.preset("neurosim-1.3", mapping="differential", adc_reference="calibrated")
    with pytest.raises(ValueError, match=r"^references were calibrated for another configuration \("):
        check_references(refs, other)
    assert check_references(refs, CrossbarConfig.preset("neurosim-1.3", mapping="differential", readout="conductance",
                                                        adc_reference="calibrated", seed=7)) is refs   # seeds aside
    with pytest.raises(ValueError, match="^inputs must hold at least one example"):
        calibrate_adc(model, x[:0], cfg)


def test_crossbar_accuracy_counts_every_input_once():
    """crossbar_accuracy is the top-1 accuracy of crossbar_forward over all of x, whatever the batch
    (the batches' boundaries, a last partial batch, a single input)."""
    from hamqcore.energy import crossbar_accuracy

    model, x = _model()
    x = torch.cat([x, x.flip(0) * 0.5, x[:1]])                       # 13 inputs
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential")
    pred = crossbar_forward(model, x, cfg).argmax(1)
    y = pred.clone()
    y[::3] = (y[::3] + 1) % 5                                         # every third label wrong: 8 of 13 right
    for batch in (64, 5, 1):
        assert crossbar_accuracy(model, x, y, cfg, batch=batch) == 8 / 13
    assert crossbar_accuracy(model, x[:1], y[:1], cfg) == 0.0 and crossbar_accuracy(model, x[1:2], y[1:2], cfg) == 1.0


def _depthwise(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(4, 40, 3, padding=1), nn.ReLU(), nn.Conv2d(40, 40, 3, padding=1, groups=40),
                      nn.ReLU(), nn.Conv2d(40, 16, 1, groups=4), nn.Flatten(), nn.Linear(16 * 6 * 6, 5))
    m = quantize_model(m, w_bits=8, a_bits=8)
    x = torch.randn(3, 4, 6, 6)
    m(x)
    return m.eval(), x


@pytest.mark.parametrize("mapping, reference", [("offset", False), ("offset", True), ("differential", False),
                                                ("twos_complement", False)])
def test_packed_depthwise_layers_compute_the_digital_output(mapping, reference):
    """Block-diagonal packing (the default): 128 // 9 = 14 depthwise kernels per array, the other cells
    of their rows and columns OFF, the offset correction over each group's own inputs: with a lossless
    ADC every mapping still computes the digital model's output."""
    model, x = _depthwise()
    with torch.no_grad():
        ref = model(x)
    for packing in ("block_diagonal", "per_group"):
        cfg = CrossbarConfig.preset("bitline", mapping=mapping, adc_bits=16, reference_column=reference,
                                    group_packing=packing)
        out = crossbar_forward(model, x, cfg)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    # the dense model reads the packed arrays the same way (conductances of a linear device)
    lin = CrossbarConfig.preset("bitline", mapping=mapping, adc_bits=16, reference_column=reference, r_access=0.0,
                                r_wire_row=0.0, r_wire_col=0.0, readout="conductance", adc="ideal") \
        if mapping != "offset" or not reference else None
    if lin is not None:
        out = crossbar_forward(model, x, lin)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_packing_is_reported_and_saves_arrays():
    from hamqcore.energy import estimate_energy

    model, x = _depthwise()
    packed = {l.name: l for l in estimate_energy(model, x, CrossbarConfig()).layers}
    alone = {l.name: l for l in estimate_energy(model, x, CrossbarConfig(group_packing="per_group")).layers}
    # 40 depthwise kernels of 9 rows: 3 arrays of 14 instead of 40 arrays (offset 8-bit, 2-bit cells: 4 columns each)
    assert packed["2"].arrays == 3 and alone["2"].arrays == 40
    assert packed["2"].weight_cells == alone["2"].weight_cells == 40 * 9 * 4
    assert packed["2"].utilization == pytest.approx(40 * 9 * 4 / (3 * 128 * 128), rel=1e-6, abs=0)
    assert packed["2"].total_energy < alone["2"].total_energy / 3
    # layers with one group are not touched
    assert packed["0"].total_energy == alone["0"].total_energy and packed["6"].arrays == alone["6"].arrays
    with pytest.raises(ValueError, match="group_packing must be one of"):
        CrossbarConfig(group_packing="diagonal")


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("conv", [
    lambda: nn.Conv2d(3, 4, 3, padding="same"),
    lambda: nn.Conv2d(3, 4, (2, 4), padding="same"),                  # even kernels: asymmetric padding
    lambda: nn.Conv2d(3, 4, 3, padding="same", dilation=2),
    lambda: nn.Conv2d(3, 4, 3, padding="valid"),
    lambda: nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode="reflect"),
    lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate"),
    lambda: nn.Conv2d(3, 4, 3, padding=(2, 1), padding_mode="circular", stride=2),
    lambda: nn.Conv2d(3, 4, (3, 2), padding="same", padding_mode="reflect"),
    lambda: nn.Conv1d(3, 4, 3, padding="same", padding_mode="circular"),
    lambda: nn.Conv1d(3, 4, 4, padding=2, padding_mode="replicate", dilation=2),
], ids=["same", "same-even", "same-dilated", "valid", "reflect", "replicate", "circular-strided",
        "same-reflect-even", "1d-same-circular", "1d-replicate-dilated"])
def test_every_padding_mode_reads_as_the_digital_conv(conv):
    """The walk's im2col pads as the conv does (zeros, 'same' with even kernels and dilation, 'valid',
    reflect / replicate / circular): through an exact ADC the crossbar's output is the quantized
    model's own."""
    torch.manual_seed(0)
    c = conv()
    two_d = isinstance(c, nn.Conv2d)
    model = quantize_model(nn.Sequential(c, nn.ReLU()), w_bits=6, a_bits=5)
    x = torch.randn(2, 3, 7, 6) if two_d else torch.randn(2, 3, 9)
    model(x)
    model.eval()
    with torch.no_grad():
        ref = model(x)
    out = crossbar_forward(model, x, CrossbarConfig.preset("bitline", mapping="differential", adc_bits=12, rows=64))
    assert out.shape == ref.shape
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_from_exported_rebuilds_each_layer_as_it_was():
    """from_exported: every Linear / Conv1d / Conv2d call of an exported program becomes a module with the
    call's stride, padding (numbers or 'same'), dilation, groups and bias or none, holding the same
    parameters; the mapped module computes the program's output and its energy is the float model's,
    layer for layer."""
    from hamqcore.energy import estimate_energy
    from hamqcore.layers import from_exported

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=2, bias=False)
            self.b = nn.Conv2d(8, 8, (1, 3), padding="same", groups=8)
            self.c = nn.Conv1d(8, 6, 3, padding=1, bias=False)
            self.d = nn.Linear(6, 5, bias=False)
            self.e = nn.Linear(5, 3)

        def forward(self, x):
            y = torch.relu(self.b(torch.relu(self.a(x))))          # (N, 8, 4, 4)
            y = torch.relu(self.c(y.flatten(2)))                    # (N, 6, 16)
            return self.e(torch.relu(self.d(y.transpose(1, 2))))    # (N, 16, 3)

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 4, 8, 8)
    mapped = from_exported(torch.export.export(net, (x,)))
    for name in "abcde":
        want, got = getattr(net, name), mapped.get_submodule(name)
        assert type(got) is type(want), name
        assert torch.equal(got.weight, want.weight) and (got.bias is None) == (want.bias is None), name
        if want.bias is not None:
            assert torch.equal(got.bias, want.bias)
        if isinstance(want, (nn.Conv1d, nn.Conv2d)):
            for f in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"):
                assert getattr(got, f) == getattr(want, f), (name, f)
        else:
            assert (got.in_features, got.out_features) == (want.in_features, want.out_features)
    with torch.no_grad():
        torch.testing.assert_close(mapped(x), net(x), rtol=1e-5, atol=1e-6)
    got, want = estimate_energy(mapped, x), estimate_energy(net, x)
    assert [r.name for r in got.layers] == [r.name for r in want.layers] == list("abcde")
    for r, w in zip(got.layers, want.layers):
        assert r.energy == pytest.approx(w.energy, rel=1e-9) and r.shape == w.shape and r.vectors == w.vectors
    assert mapped.eval() is mapped and not mapped.training        # eval() as nn.Module has it: itself
