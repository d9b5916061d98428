"""torchao's post-training quantized layers read as torchao's own integers, steps and widths.

torchao's ``quantize_`` replaces a Linear/Conv weight by a tensor subclass holding one signed integer
per weight (``qdata``) and its scales; hamqcore maps those integers (never re-quantized), refuses what
it cannot map (packed or asymmetric formats, per-block scales in the forward pass) and the penalty
(frozen integer codes have no gradient). Skipped without torchao (an optional test dependency).
"""
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

torchao = pytest.importorskip("torchao", reason="torchao is an optional dependency (pip install torchao)")
from torchao.quantization import (Int8WeightOnlyConfig, IntxWeightOnlyConfig,  # noqa: E402
                                  quantize_)
from torchao.quantization.granularity import PerAxis  # noqa: E402

from hamqcore.crossbar import CrossbarConfig  # noqa: E402
from hamqcore.energy import crossbar_forward, estimate_energy  # noqa: E402
from hamqcore.kernels import hamming_weight  # noqa: E402
from hamqcore.layers import coverage, input_integers, layer_integers  # noqa: E402
from hamqcore.nn import HamQRegularizer, hw_stats  # noqa: E402
from hamqcore.pricing import bit_prices  # noqa: E402

MAPPED = (nn.Linear, nn.Conv2d)


def _quantize(m, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # torchao's own deprecation notes
        quantize_(m, config, filter_fn=lambda mod, fqn: isinstance(mod, MAPPED))
    return m


def _conv_model(seed=0, bits=4):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    return _quantize(m, IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerAxis(0)))


def _mlp(seed=0):
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5))
    return _quantize(m, Int8WeightOnlyConfig())


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_torchao_integers_and_widths_are_its_own(bits):
    m = _conv_model(bits=bits)
    for name in ("0", "3"):
        layer = m.get_submodule(name)
        own = layer.weight.qdata.numpy()
        q, b = layer_integers(layer, 8, name)
        # torchao's grid is [-2^(b-1), 2^(b-1) - 1]: its extra code -2^(b-1) takes one bit more in
        # hamqcore's symmetric levels (these random weights use it)
        assert own.min() == -2 ** (bits - 1)
        assert b == bits + 1 and np.array_equal(q, own.astype(np.int16)), name
    widths = {"0": bits + 1, "3": bits + 1}
    stats = hw_stats(m, 8, "twos_complement")
    for name in ("0", "3"):
        own = m.get_submodule(name).weight.qdata.numpy().astype(np.int16)
        assert stats[name]["mean_hw"] == pytest.approx(
            float(hamming_weight(own, widths[name], "twos_complement").mean()), rel=1e-6, abs=0), name
    x = torch.rand(2, 3, 8, 8)
    report = estimate_energy(m, x)
    assert {l.name: (l.w_bits, l.a_bits) for l in report.layers} == {n: (b, 8) for n, b in widths.items()}
    assert report.coverage.covered_fraction == 1.0 and report.total_energy > 0
    prices = bit_prices(m, x, CrossbarConfig.preset("neurosim-1.3"))
    assert {n: len(p) for n, p in prices.items()} == widths


def test_torchao_symmetric_integers_keep_their_width():
    m = _mlp(3)
    for layer in (m[0], m[2]):
        layer.weight.qdata.clamp_(-127, 127)       # no -128: the 8-bit symmetric levels hold them
    x = torch.randn(4, 20)
    report = estimate_energy(m, x, CrossbarConfig.preset("neurosim-1.3", mapping="differential"))
    assert [l.w_bits for l in report.layers] == [8, 8]
    m[2].weight.qdata[0, 0] = -128
    assert [l.w_bits for l in estimate_energy(m, x).layers] == [8, 9]


def test_torchao_on_a_lossless_crossbar_is_its_integers_times_its_steps():
    m = _mlp(1).eval()
    x = torch.randn(7, 20)
    # the reference: torchao's integers and per-row scales, the inputs at hamqcore's 8-bit input grid
    ref = x
    for layer in (m[0], m[2]):
        xq, sx, _, _ = input_integers(layer, ref, 8)
        w = layer.weight.qdata.to(torch.float64) * layer.weight.scale.to(torch.float64)
        ref = F.linear(xq.to(torch.float64) * float(sx), w, layer.bias.detach().to(torch.float64)).float()
        if layer is m[0]:
            ref = F.relu(ref)
    y = crossbar_forward(m, x, CrossbarConfig.preset("bitline"))
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():                       # and close to torchao's own (float-input) output
        digital = m(x)
    assert float((y - digital).abs().max()) < 0.05 * float(digital.abs().max())


def test_torchao_per_block_scales_refuse_the_forward_pass_but_not_the_energy():
    m = _conv_model()     # PerAxis(0) on a conv: torchao scales each (out, kh, kw) block of inputs
    x = torch.rand(1, 3, 8, 8)
    assert estimate_energy(m, x).total_energy > 0
    with pytest.raises(ValueError, match="per block"):
        crossbar_forward(m, x, CrossbarConfig.preset("bitline"))


def test_torchao_layers_refuse_the_penalty_and_are_covered():
    m = _mlp()
    cov = coverage(m)
    assert cov.covered_fraction == 1.0 and not cov.uncovered
    with pytest.raises(ValueError, match="torchao"):
        HamQRegularizer(m, input_shape=(20,))
    with pytest.raises(ValueError, match="no Conv1d"):   # excluded, nothing is left to regularize
        HamQRegularizer(m, input_shape=(20,), exclude=["0", "2"])


def test_torchao_formats_hamqcore_cannot_map_are_named():
    m = _conv_model(bits=4)
    w = m[3].weight
    w.zero_point.fill_(1)                                        # asymmetric
    with pytest.raises(ValueError, match="zero point"):
        estimate_energy(m, torch.rand(1, 3, 8, 8))



def test_torchao_one_bit_codes_read_as_two_bits():
    m = _conv_model(bits=1)                         # codes {-1, 0}: hamqcore's 2-bit levels hold them
    assert set(np.unique(m[3].weight.qdata.numpy())) <= {-1, 0}
    assert [l.w_bits for l in estimate_energy(m, torch.rand(1, 3, 8, 8)).layers] == [2, 2]


def test_torchao_float_formats_are_named_not_read_as_integers():
    from torchao.quantization import Float8WeightOnlyConfig
    m = _quantize(nn.Sequential(nn.Linear(32, 16)), Float8WeightOnlyConfig())
    with pytest.raises(ValueError, match="Float8Tensor is not read"):
        estimate_energy(m, torch.randn(2, 32))
