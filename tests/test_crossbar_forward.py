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
