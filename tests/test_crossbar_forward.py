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
    with pytest.raises(ValueError, match="no hamqcore quantized layer"):
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
        assert strict.report.total_energy == pytest.approx(strict.best.energy)
    with pytest.raises(ValueError, match="accuracy_target must be a fraction"):
        cheapest_config(model, x, y, base, 1.5)
    with pytest.raises(ValueError, match="unknown CrossbarConfig field"):
        cheapest_config(model, x, y, base, 0.5, {"adc_bitz": (3,)})
