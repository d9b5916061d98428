"""The periphery-aware penalty: bit prices measured in the simulator, and the regularizer that uses
them (weighting="crossbar")."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from hamqcore.crossbar import CrossbarConfig
from hamqcore.pricing import bit_prices
from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.study.train import TrainConfig

# the bitline model without access or wire resistance: each cell conducts exactly G(d)
IDEAL_WIRES = dict(r_access=0.0, r_wire_row=0.0, r_wire_col=0.0)


def _linear(q: np.ndarray) -> nn.Linear:
    """A Linear layer whose symmetric max-step integers (8 bits) are exactly q (max |q| = 127)."""
    m = nn.Linear(q.shape[1], q.shape[0], bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(q / 127.0))
    return m


def _q(rng, shape, hi=127):
    q = rng.integers(-hi, hi + 1, size=shape)
    q[0, 0] = 127            # fixes the max step at 1/127 for every row that holds 127
    q[:, 0] = 127
    return q


def test_bitline_prices_are_hand_computable():
    """Bitline, 1-bit cells, every input bit 1: an ON cell costs V^2 t (g_on - g_off) on every one of
    the a_bits pulses, whichever bit it stores; the differential code never sets bit 7."""
    rng = np.random.default_rng(0)
    q = _q(rng, (6, 20))
    cfg = CrossbarConfig.preset("bitline", mapping="differential", cell_bits=1, **IDEAL_WIRES)
    x = torch.ones(3, 20)                       # quantized to 255: all 8 input bits set
    prices = bit_prices(_linear(q), x, cfg)
    expect = 0.5 ** 2 * 10e-9 * (1 / 6e3 - 1 / 900e3) * 8
    np.testing.assert_allclose(prices[""][:7], expect, rtol=1e-9)
    assert prices[""][7] == 0.0
    # 2-bit cells: G(d) = g_off + d/3 (g_on - g_off), so a cell's low bit adds a third of the range
    # and its high bit two thirds (the top digit holds bit 6 alone, as its low bit)
    two = bit_prices(_linear(q), x, CrossbarConfig.preset("bitline", mapping="differential", **IDEAL_WIRES))[""]
    np.testing.assert_allclose(two[[1, 3, 5]], 2 * expect / 3, rtol=1e-9)
    np.testing.assert_allclose(two[[0, 2, 4, 6]], expect / 3, rtol=1e-9)


@pytest.mark.parametrize("mapping", ["offset", "twos_complement"])
def test_bitline_prices_of_every_stored_bit_sign_included(mapping):
    """Under the offset and two's complement codes every one of the 8 bits is a cell (the sign bit
    too, cleared by moving q by +-2^7): on the bitline model with 1-bit cells each costs the same."""
    rng = np.random.default_rng(3)
    q = _q(rng, (6, 20))
    q[1, 1:4] = [-127, -100, -1]                 # negative weights: two's complement sign bits set
    cfg = CrossbarConfig.preset("bitline", mapping=mapping, cell_bits=1, **IDEAL_WIRES)
    prices = bit_prices(_linear(q), torch.ones(3, 20), cfg)[""]
    expect = 0.5 ** 2 * 10e-9 * (1 / 6e3 - 1 / 900e3) * 8
    np.testing.assert_allclose(prices, expect, rtol=1e-9)


def test_neurosim14_prices_nothing_and_says_so():
    """NeuroSim V1.4's SRAM energy does not see the stored bits: every price is exactly 0, with a
    warning; an accounting that does see them prices without one."""
    rng = np.random.default_rng(2)
    layer, x = _linear(_q(rng, (6, 20))), torch.rand(3, 20)
    with pytest.warns(UserWarning, match=r"every bit price is 0 under model 'neurosim-1\.4'.*NeuroSim V1\.4 charges "
                                         r"an SRAM read by its driven rows alone"):
        prices = bit_prices(layer, x, CrossbarConfig.preset("neurosim-1.4"))
    assert not np.any(prices[""])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(bit_prices(layer, x, CrossbarConfig.preset("neurosim-1.3", mapping="offset"))[""] > 0)


def test_an_empty_bit_is_priced_by_a_probe_and_repeated_calls_add():
    rng = np.random.default_rng(1)
    q = _q(rng, (4, 16), hi=15)              # bits 4..6 are 0 except in the 127 column
    q[:, 0] = 127
    q[1:, 0] = 15
    cfg = CrossbarConfig.preset("bitline", mapping="differential", cell_bits=1, **IDEAL_WIRES)
    x = torch.ones(2, 16)
    expect = 0.5 ** 2 * 10e-9 * (1 / 6e3 - 1 / 900e3) * 8
    np.testing.assert_allclose(bit_prices(_linear(q), x, cfg)[""][:7], expect, rtol=1e-9)
    layer = _linear(q)
    twice = nn.Sequential()
    twice.add_module("fc", layer)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16, bias=False)
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(np.tile(q, (4, 1)) / 127.0))

        def forward(self, v):
            return self.fc(self.fc(v).clamp_min(0) * 0 + v)

    prices = bit_prices(Twice(), x, cfg)
    np.testing.assert_allclose(prices["fc"][:7], 2 * expect, rtol=1e-9)


def test_emptying_a_digit_position_is_priced_with_the_cycles_it_frees():
    """Under the HW-aware periphery the top bit's ON cells keep whole mux cycles running: removing
    them saves more per cell than the current they draw, so the top bit costs far more than bit 0."""
    rng = np.random.default_rng(2)
    q = rng.integers(-30, 31, size=(32, 128))
    q[:, 0] = 127                                   # one weight per row uses the top digit
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", skip_empty=True)
    x = torch.rand(2, 128)
    p = bit_prices(_linear(q), x, cfg)[""]
    assert p[6] > 20 * p[0] > 0
    plain = bit_prices(_linear(q), x, CrossbarConfig.preset("neurosim-1.3", mapping="differential"))[""]
    assert p[6] > 5 * plain[6]
    # with per-column references a bit-0 cell also lengthens its column's own reference ladder
    # (charged as NeuroSim V1.4's reference columns): every position costs more than without them
    auto = bit_prices(_linear(q), x, CrossbarConfig.preset("neurosim-1.3", mapping="differential", adc_bits="auto",
                                                           skip_empty=True))[""]
    assert auto[0] > 2 * p[0] and auto[6] > 5 * auto[0]


def test_bit_prices_errors():
    m = _linear(np.full((2, 3), 127))
    with pytest.raises(TypeError, match="config must be a CrossbarConfig"):
        bit_prices(m, torch.ones(1, 3), "neurosim-1.3")
    with pytest.raises(ValueError, match="probe_every must be an integer >= 1, got 0"):
        bit_prices(m, torch.ones(1, 3), CrossbarConfig(), probe_every=0)


def test_crossbar_weighting_starts_at_the_mean_hw_and_follows_the_prices():
    rng = np.random.default_rng(3)
    model = nn.Sequential(_linear(_q(rng, (8, 40))), nn.ReLU(), _linear(_q(rng, (4, 8))))
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", adc_bits="auto", skip_empty=True)
    x = torch.rand(2, 40)
    reg = HamQRegularizer(model, 8, lam=1.0, weighting="crossbar", crossbar=cfg, example_input=x)
    # at integer weights the relaxed cost is the level cost: the penalty equals the mean HW exactly
    assert float(reg().detach()) == pytest.approx(hw_stats(model, 8)["total"]["mean_hw"], rel=1e-6, abs=0)  # float32 weights
    assert reg.unit > 0 and set(reg.bit_cost) == {"0", "2"}
    # gradients flow to the weights, and more strongly to the top bits (priced higher)
    reg().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()
    unit = reg.unit
    with torch.no_grad():
        model[0].weight[:, 20:] = 0          # far fewer ON cells: the prices change, the unit stays
    reg.refresh()
    assert reg.unit == unit
    reg.refresh(rescale=True)
    assert reg.unit != unit
    assert float(reg().detach()) == pytest.approx(hw_stats(model, 8)["total"]["mean_hw"], rel=1e-6, abs=0)


def test_crossbar_weighting_errors():
    model = nn.Sequential(nn.Linear(4, 4))
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential")
    with pytest.raises(TypeError, match="crossbar must be a CrossbarConfig, got NoneType"):
        HamQRegularizer(model, weighting="crossbar", example_input=torch.ones(1, 4))
    with pytest.raises(ValueError, match="encoding must be 'offset', the code the 'offset' mapping stores"):
        HamQRegularizer(model, weighting="crossbar", crossbar=CrossbarConfig(), example_input=torch.ones(1, 4))
    with pytest.raises(ValueError, match="weighting='crossbar' needs example_input"):
        HamQRegularizer(model, weighting="crossbar", crossbar=cfg)
    with pytest.raises(ValueError, match="crossbar is used by weighting='crossbar' only"):
        HamQRegularizer(model, weighting="params", crossbar=cfg)
    with pytest.raises(ValueError, match="refresh\\(\\) prices bits for weighting='crossbar'"):
        HamQRegularizer(model, weighting="params").refresh()
    with pytest.raises(ValueError, match="weighting='crossbar' needs crossbar="):
        TrainConfig(weighting="crossbar").validate()
    with pytest.raises(ValueError, match="unknown CrossbarConfig field"):
        TrainConfig(weighting="crossbar", crossbar={"preset": "neurosim-1.3", "colour": 1}).validate()
    with pytest.raises(ValueError, match="crossbar is used by weighting='crossbar' only"):
        TrainConfig(crossbar={"preset": "neurosim-1.3"}).validate()


def test_price_unit_is_the_mean_price_of_an_on_cell():
    """price_unit: the level costs of every stored weight over their ON cells, at the layers' bits (a
    float layer at the default 8), 1.0 when there is nothing to price; errors name the layer."""
    from hamqcore.kernels import hamming_weight
    from hamqcore.pricing import price_unit

    q = np.array([[127, 3, -5, 0], [127, 64, 1, -2]])
    model = nn.Sequential(_linear(q))
    price = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 0.0])
    costs = [sum(price[p] for p in range(8) if (abs(int(v)) >> p) & 1) for v in q.reshape(-1)]
    on = int(hamming_weight(q.astype(np.int16), 8).sum())
    assert price_unit(model, {"0": price}, "differential") == pytest.approx(sum(costs) / on, rel=1e-12, abs=0)
    # the offset code q + 128 (its own bits and ON cells: the encoding reaches both sums)
    codes = [int(v) + 128 for v in q.reshape(-1)]
    off_costs = [sum(price[p] for p in range(8) if (c >> p) & 1) for c in codes]
    off_on = sum(bin(c).count("1") for c in codes)
    assert price_unit(model, {"0": price}, "offset") == pytest.approx(sum(off_costs) / off_on, rel=1e-12, abs=0)
    assert price_unit(model, {"0": np.zeros(8)}, "differential") == 1.0
    assert price_unit(model, {}, "differential") == 1.0
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer '0' has 1 non-finite weight"):
        price_unit(model, {"0": price}, "differential")
