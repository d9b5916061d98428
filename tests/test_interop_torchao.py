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


# --------------------------------------------------------------------------------------------------
# torchao's QAT layers (FakeQuantizedLinear) and its quantized inputs (dynamic per token / per tensor)
# --------------------------------------------------------------------------------------------------
def _torchao_inputs_own(layer, x, pre_scale=True):
    """torchao's own dequantized input of a layer, computed by torchao's code (independently of hamqcore);
    ``pre_scale=False``: without an Int8Tensor weight's ``act_pre_scale``."""
    w = layer.weight
    if getattr(layer, "activation_fake_quantizer", None) is not None:
        return layer.activation_fake_quantizer(x)
    if getattr(w, "act_quant_kwargs", None) is not None:
        from torchao.quantization.quantize_.common.quantize_tensor_kwargs import \
            _choose_quant_func_and_quantize_tensor
        if pre_scale and w.act_pre_scale is not None:   # as its Int8Tensor linear does (SmoothQuant-style)
            x = x * w.act_pre_scale
        return _choose_quant_func_and_quantize_tensor(x, w.act_quant_kwargs, scale=w.act_quant_scale,
                                                      zero_point=w.act_quant_zero_point).dequantize()
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import \
        _apply_int8_act_asym_per_token_quant_dequant
    return _apply_int8_act_asym_per_token_quant_dequant(x)


def _input_cases():
    from torchao.quantization import (Int8DynamicActivationInt8WeightConfig, Int8DynamicActivationIntxWeightConfig,
                                      Int8StaticActivationInt8WeightConfig)
    from torchao.quantization.granularity import PerTensor
    from torchao.quantization.qat import QATConfig
    from torchao.quantization.quant_primitives import MappingType
    intx = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerAxis(0))
    return {
        # (config, input bits, whether the inputs are asymmetric: read as q - zero point, one bit more)
        "int8 dynamic, symmetric per row": (Int8DynamicActivationInt8WeightConfig(), 8),
        "int8 dynamic, asymmetric per row": (Int8DynamicActivationInt8WeightConfig(act_mapping_type=MappingType.ASYMMETRIC), 9),
        "int8 dynamic, reduced range": (Int8DynamicActivationInt8WeightConfig(reduce_range=True), 7),
        "int8 static per tensor": (Int8StaticActivationInt8WeightConfig(act_quant_scale=torch.full((1, 1, 1), 0.02),
                                                                       granularity=PerTensor()), 8),
        "int8 static asymmetric per tensor": (Int8StaticActivationInt8WeightConfig(
            act_quant_scale=torch.full((1, 1, 1), 0.02), act_quant_zero_point=torch.full((1, 1, 1), 7, dtype=torch.int8),
            granularity=PerTensor(), act_mapping_type=MappingType.ASYMMETRIC), 9),
        "intx weights, int8 asymmetric per token": (intx, 9),
        "QAT prepare, int8 asymmetric per token": (QATConfig(intx, step="prepare"), 9),
    }


@pytest.mark.parametrize("case", list(_input_cases()))
def test_torchao_inputs_are_read_as_torchao_quantizes_them(case):
    config, bits = _input_cases()[case]
    m = _quantize(nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5)), config).eval()
    torch.manual_seed(1)
    x = torch.randn(3, 4, 20)                  # tokens: every vector along the last axis its own step
    h = m[1](m[0](x)).detach()
    for layer, inp in ((m[0], x), (m[2], h)):
        q, step, b, signed = input_integers(layer, inp, 8)
        assert b == bits and signed and q.shape == inp.shape
        assert int(q.abs().max()) <= 2 ** (bits - 1)
        own = _torchao_inputs_own(layer, inp)
        torch.testing.assert_close(q.to(torch.float32) * step, own, rtol=0, atol=1e-6)
    with torch.no_grad():
        digital = m(x)
    # lossless crossbar = torchao's own integer arithmetic (its per-token steps applied after the array)
    y = crossbar_forward(m, x, CrossbarConfig.preset("bitline"))
    torch.testing.assert_close(y, digital, rtol=1e-5, atol=1e-5)
    report = estimate_energy(m, x)
    assert [l.a_bits for l in report.layers] == [bits, bits] and report.coverage.covered_fraction == 1.0


def test_torchao_pre_scaled_inputs_are_read_as_its_linear_scales_them():
    """An Int8Tensor weight with ``act_pre_scale`` (SmoothQuant-style): torchao multiplies the input by
    it before quantizing; hamqcore reads the integers of the scaled input, and a lossless crossbar
    computes torchao's own output."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig
    m = _quantize(nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5)),
                  Int8DynamicActivationInt8WeightConfig()).eval()
    torch.manual_seed(2)
    m[0].weight.act_pre_scale = torch.rand(20) * 2 + 0.25
    x = torch.randn(3, 4, 20)
    q, step, b, _ = input_integers(m[0], x, 8)
    torch.testing.assert_close(q.to(torch.float32) * step, _torchao_inputs_own(m[0], x), rtol=0, atol=1e-6)
    assert not torch.allclose(q.to(torch.float32) * step, _torchao_inputs_own(m[0], x, pre_scale=False))  # it acted
    with torch.no_grad():
        digital = m(x)
    torch.testing.assert_close(crossbar_forward(m, x, CrossbarConfig.preset("bitline")), digital, rtol=1e-5, atol=1e-5)


def test_torchao_per_token_inputs_of_a_convolution_refuse_the_forward_pass_but_not_the_energy():
    from torchao.quantization.quantize_.workflows.intx.intx_unpacked_to_int8_tensor import (
        IntxUnpackedToInt8Tensor, IntxUnpackedToInt8TensorActivationQuantization)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3))     # torchao's conv2d path for these weights (its configs take 2-d only)
    m[0].weight = nn.Parameter(IntxUnpackedToInt8Tensor.from_hp(
        m[0].weight.detach(), (1, 3, 3, 3), torch.int4,
        activation_quantization=IntxUnpackedToInt8TensorActivationQuantization.INT8_ASYM_PER_TOKEN), requires_grad=False)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        m(x)                                      # torchao runs it
    q, step, b, _ = input_integers(m[0], x, 8)
    assert b == 9 and step.shape == (2, 3, 6, 1)         # torchao's "token": a row of the image
    assert estimate_energy(m, x).layers[0].a_bits == 9
    with pytest.raises(ValueError, match="inputs are scaled per block"):
        crossbar_forward(m, x, CrossbarConfig.preset("bitline"))


def _qat_model(weight_config, activation_config=None, seed=0):
    from torchao.quantization.qat import QATConfig
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    return _quantize(m, QATConfig(activation_config=activation_config, weight_config=weight_config, step="prepare"))


@pytest.mark.parametrize("dtype,group", [(torch.int4, None), (torch.int4, 8), (torch.int8, None), (torch.int2, 16)])
def test_torchao_qat_weights_are_the_codes_its_fake_quantizer_rounds_to(dtype, group):
    from torchao.quantization.qat import IntxFakeQuantizeConfig
    cfg = (IntxFakeQuantizeConfig(dtype, granularity="per_channel") if group is None
           else IntxFakeQuantizeConfig(dtype, group_size=group))
    m = _qat_model(cfg)
    bits = int(str(dtype)[-1])
    for name in ("0", "2"):
        layer = m.get_submodule(name)
        q, b = layer_integers(layer, 8, name)
        own = layer.weight_fake_quantizer(layer.weight).detach()          # torchao's fake-quantized weight
        step = layer.weight_fake_quantizer.scale.reshape(layer.weight.shape[0], -1)
        step = step.repeat_interleave(layer.weight.shape[1] // step.shape[1], dim=1)
        torch.testing.assert_close(torch.from_numpy(q).float() * step, own, rtol=0, atol=1e-7)
        assert q.min() >= -2 ** (bits - 1) and q.max() <= 2 ** (bits - 1) - 1
        # torchao's grid [-2^(b-1), 2^(b-1) - 1] reads as b + 1 bits where its extra code is used
        assert b == (bits + 1 if q.min() == -2 ** (bits - 1) else bits)
    cov = coverage(m)
    assert cov.covered_fraction == 1.0
    report = estimate_energy(m, torch.randn(2, 32))
    assert report.coverage.covered_fraction == 1.0 and report.total_energy > 0
    if group is None:           # one step per output channel: the forward pass reads off the crossbar
        x = torch.randn(5, 32)
        ref = x
        for layer in (m[0], m[2]):
            xq, sx, _, _ = input_integers(layer, ref, 8)
            ref = F.linear(xq.double() * float(sx), layer.weight_fake_quantizer(layer.weight).double().detach(),
                           layer.bias.detach().double()).float()
            if layer is m[0]:
                ref = F.relu(ref)
        torch.testing.assert_close(crossbar_forward(m, x, CrossbarConfig.preset("bitline")), ref,
                                   rtol=1e-5, atol=1e-5)
    else:
        with pytest.raises(ValueError, match="per block"):
            crossbar_forward(m, torch.randn(2, 32), CrossbarConfig.preset("bitline"))


def _qat_weight_step(layer):
    """The step of every weight of a torchao QAT layer: its weight fake quantizer's scales (set by its own
    forward), one per group of a row, repeated over the group."""
    layer.weight_fake_quantizer(layer.weight)
    step = layer.weight_fake_quantizer.scale.reshape(layer.weight.shape[0], -1)
    return step.repeat_interleave(layer.weight.shape[1] // step.shape[1], dim=1)


@pytest.mark.parametrize("group", [None, 8])
def test_the_penalty_trains_torchao_qat_layers_and_lowers_their_own_hw(group):
    from hamqcore.ops import relaxed_hw_penalty
    from torchao.quantization.qat import IntxFakeQuantizeConfig
    cfg = (IntxFakeQuantizeConfig(torch.int4, granularity="per_channel") if group is None
           else IntxFakeQuantizeConfig(torch.int4, group_size=group))
    m = _qat_model(cfg, seed=3)
    reg = HamQRegularizer(m, weighting="params", lam=1.0, encoding="twos_complement")
    # the penalty is the relaxed HW of w / torchao's step, per group, at torchao's read width
    ref = 0.0
    for name in ("0", "2"):
        layer = m.get_submodule(name)
        q, b = layer_integers(layer, 8, name)
        step = _qat_weight_step(layer)
        ref += float(relaxed_hw_penalty(layer.weight.detach() / step, b, "twos_complement")) * reg.coef[name]
    assert float(reg.penalty().detach()) == pytest.approx(ref, rel=1e-5, abs=0)
    before = hw_stats(m, 8, "twos_complement")["total"]["mean_hw"]
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    for _ in range(20):
        opt.zero_grad()
        reg().backward()
        opt.step()
    after = hw_stats(m, 8, "twos_complement")["total"]["mean_hw"]
    assert after < 0.8 * before


def test_torchao_qat_formats_hamqcore_cannot_map_are_named_and_disabled_ones_are_float():
    from torchao.quantization.qat import IntxFakeQuantizeConfig
    from torchao.quantization.qat.linear import disable_linear_fake_quant
    m = _qat_model(IntxFakeQuantizeConfig(torch.int4, group_size=8, is_symmetric=False))
    with pytest.raises(ValueError, match="asymmetric"):
        estimate_energy(m, torch.randn(2, 32))
    m = _qat_model(IntxFakeQuantizeConfig(torch.int4, granularity="per_channel"))
    m.apply(disable_linear_fake_quant)        # torchao then computes in float: so does hamqcore
    q, b = layer_integers(m[0], 8, "0")
    assert b == 8 and int(np.abs(q).max()) == 127
    from torchao.quantization.qat import Float8FakeQuantizeConfig
    m = _qat_model(Float8FakeQuantizeConfig())
    with pytest.raises(ValueError, match="Float8FakeQuantizer is not read"):
        estimate_energy(m, torch.randn(2, 32))


@pytest.mark.parametrize("group", [None, 8])
def test_the_crossbar_priced_penalty_on_torchao_qat_layers_prices_every_group_alike(group):
    """weighting="crossbar" on torchao QAT layers: every weight's relaxed level cost under its layer's
    bit prices, w / torchao's step per group (the same prices for every group of a row)."""
    from hamqcore.ops import scaled_hw_penalty
    from torchao.quantization.qat import IntxFakeQuantizeConfig
    cfg = (IntxFakeQuantizeConfig(torch.int4, granularity="per_channel") if group is None
           else IntxFakeQuantizeConfig(torch.int4, group_size=group))
    m = _qat_model(cfg, seed=4)
    x = torch.randn(4, 32)
    reg = HamQRegularizer(m, weighting="crossbar", lam=1.0, encoding="twos_complement", example_input=x,
                          crossbar=CrossbarConfig.preset("neurosim-1.3", mapping="twos_complement"))
    ref = 0.0
    for name in ("0", "2"):
        layer = m.get_submodule(name)
        _, b = layer_integers(layer, 8, name)
        step = _qat_weight_step(layer)
        assert reg.bit_cost[name].shape == (b,) and float(reg.bit_cost[name].sum()) > 0
        ref += float(scaled_hw_penalty(layer.weight.detach() / step, torch.tensor(1.0), b, "twos_complement",
                                       weight=reg.coef[name], bit_cost=reg.bit_cost[name]))
    assert float(reg.penalty().detach()) == pytest.approx(ref, rel=1e-5, abs=0)
