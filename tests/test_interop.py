"""Another quantization library's layers are read as that library's own integers, steps and widths
(issue #22): Brevitas, an optional test dependency (``pip install '.[test]'`` installs it; the tests
are skipped, with the reason, where it cannot be imported)."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

brevitas = pytest.importorskip("brevitas", reason="Brevitas is an optional dependency (pip install brevitas)")
import brevitas.nn as qnn  # noqa: E402
from brevitas.quant import (Int8ActPerTensorFloat, Int8WeightPerChannelFloat,  # noqa: E402
                            ShiftedUint8WeightPerTensorFloat)

from hamqcore.crossbar import CrossbarConfig  # noqa: E402
from hamqcore.energy import calibrate_adc, crossbar_forward, estimate_energy  # noqa: E402
from hamqcore.kernels import hamming_weight  # noqa: E402
from hamqcore.nn import HamQRegularizer, hw_stats  # noqa: E402
from hamqcore.pricing import bit_prices  # noqa: E402


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),                                  # 8-bit signed inputs
        qnn.QuantConv2d(3, 8, 3, weight_bit_width=4),                                 # per tensor, 4 bits
        qnn.QuantReLU(return_quant_tensor=True),                                      # unsigned 8-bit
        qnn.QuantConv2d(8, 8, 3, groups=8, weight_bit_width=5, weight_quant=Int8WeightPerChannelFloat),
        nn.Flatten(),
        qnn.QuantLinear(8 * 4 * 4, 5, bias=True, weight_bit_width=3, input_quant=Int8ActPerTensorFloat),
    )


LAYERS = {"1": 4, "3": 5, "5": 3}


def _own_hw(m, name):
    q = m.get_submodule(name).quant_weight().int().numpy().astype(np.int64)
    return float(np.mean([bin(abs(int(v))).count("1") for v in q.ravel()]))


def test_brevitas_integers_and_widths_are_its_own():
    m = _model()
    stats = hw_stats(m, 8, "differential")
    for name in LAYERS:
        assert stats[name]["mean_hw"] == pytest.approx(_own_hw(m, name), abs=1e-12), name
        q = m.get_submodule(name).quant_weight().int().numpy()
        assert np.abs(q).max() <= 2 ** (LAYERS[name] - 1) - 1                       # narrow range: differential fits
        assert stats[name]["mean_hw"] == pytest.approx(float(hamming_weight(q.astype(np.int8), 8, "differential").mean()), rel=1e-6, abs=0)
    x = torch.randn(3, 3, 8, 8)
    report = estimate_energy(m, x)
    assert {l.name: (l.w_bits, l.a_bits) for l in report.layers} == {n: (b, 8) for n, b in LAYERS.items()}
    assert "4/8" in str(report) and report.coverage.covered_fraction == 1.0
    prices = bit_prices(m, x, CrossbarConfig.preset("neurosim-1.3", mapping="differential"))
    assert {n: len(p) for n, p in prices.items()} == LAYERS          # one price per bit of its own width


def test_brevitas_on_a_lossless_crossbar_is_its_digital_output():
    m = _model(1).eval()
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        ref = m(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # every layer is covered: nothing to warn about
        y = crossbar_forward(m, x, CrossbarConfig.preset("bitline"))
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    cfg = CrossbarConfig(adc_reference="calibrated", mapping="differential")
    lossy = crossbar_forward(m, x, cfg, references=calibrate_adc(m, x, cfg))
    assert lossy.shape == ref.shape and not torch.equal(lossy, ref)


def test_regularizer_trains_brevitas_weights_towards_fewer_on_cells():
    m = _model(2)
    before = {n: _own_hw(m, n) for n in LAYERS}
    reg = HamQRegularizer(m, lam=1.0, weighting="params")
    assert sorted(n for n, _ in reg.layers) == sorted(LAYERS)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        reg().backward()
        opt.step()
    after = {n: _own_hw(m, n) for n in LAYERS}
    assert sum(after.values()) < 0.8 * sum(before.values()), (before, after)


def test_asymmetric_library_quantizers_are_refused():
    m = nn.Sequential(qnn.QuantConv2d(3, 4, 3, weight_quant=ShiftedUint8WeightPerTensorFloat))
    with pytest.raises(ValueError, match="zero point"):
        estimate_energy(m, torch.randn(1, 3, 5, 5))
