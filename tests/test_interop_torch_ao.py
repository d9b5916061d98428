"""torch.ao's eager-mode quantized modules read as their own integers, steps and widths.

``torch.ao.quantization.convert`` (static) and ``quantize_dynamic`` replace Linear/Conv layers by
modules holding packed qint8 weights behind ``weight()`` (no parameter); the static ones take quint8
tensors and requantize their outputs. hamqcore reads those integers (never re-quantized), the inputs
as the modules compute with them, and forms the modules' quantized outputs from the crossbar. torch
deprecates this API but still ships it (2.13), so it is tested with torch alone.
"""
import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.ao.quantization as tq
import torch.nn as nn

import hamqcore
from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import calibrate_adc, crossbar_forward, estimate_energy
from hamqcore.layers import coverage, input_integers, layer_integers
from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.pricing import bit_prices

LOSSLESS = CrossbarConfig.preset("bitline")          # an ideal ADC: the crossbar computes exactly


class Net(nn.Module):
    """Every mapped kind: a conv fused with its ReLU, a grouped conv, a Conv1d, a Linear fused with its
    ReLU and a plain Linear."""

    def __init__(self):
        super().__init__()
        self.c1, self.r1 = nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()
        self.c2 = nn.Conv2d(8, 8, 3, groups=2)
        self.c3 = nn.Conv1d(8, 6, 3)
        self.f, self.fr = nn.Linear(6 * 4, 10), nn.ReLU()
        self.g = nn.Linear(10, 5)

    def forward(self, x):
        x = self.c2(self.r1(self.c1(x)))              # (N, 8, 6, 6)
        x = self.c3(x.flatten(2)[:, :, :6])            # (N, 6, 4)
        return self.g(self.fr(self.f(x.flatten(1))))


def _static(seed=0):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # torch's deprecation notes
        net = tq.fuse_modules(Net().eval(), [["c1", "r1"], ["f", "fr"]])
        model = tq.QuantWrapper(net)
        model.qconfig = tq.get_default_qconfig("x86")
        tq.prepare(model, inplace=True)
        model(torch.randn(64, 3, 8, 8))
        tq.convert(model, inplace=True)
    return model


def _dynamic(fused: bool, seed=0):
    torch.manual_seed(seed)
    first = (torch.ao.nn.intrinsic.LinearReLU(nn.Linear(16, 32), nn.ReLU()) if fused
             else nn.Sequential(nn.Linear(16, 32), nn.ReLU()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(nn.Sequential(first, nn.Linear(32, 4)), {nn.Linear, torch.ao.nn.intrinsic.LinearReLU},
                                   dtype=torch.qint8)


def _run(model, x):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return model(x)


STATIC = ["module.c1", "module.c2", "module.c3", "module.f", "module.g"]


def test_static_layers_are_covered_and_read_as_their_own_integers():
    model = _static()
    layers = dict(model.named_modules())
    cov = coverage(model)
    assert [n for n, _ in cov.covered] == [f"{n}.weight" for n in STATIC] and not cov.uncovered
    assert cov.parameters == sum(layers[n].weight().numel() for n in STATIC)
    for name in STATIC:
        w = layers[name].weight()
        q, bits = layer_integers(layers[name], 8, name)
        assert np.array_equal(q, w.int_repr().numpy())                 # zero points 0: the integers themselves
        assert bits == (9 if int(w.int_repr().min()) == -128 else 8)     # the full-range code -128: one bit more
    report = estimate_energy(model, torch.randn(2, 3, 8, 8))
    assert [r.name for r in report.layers] == STATIC
    assert [r.kind for r in report.layers] == ["ConvReLU2d", "Conv2d", "Conv1d", "LinearReLU", "Linear"]
    assert report.layers[1].shape == [8, 4, 3, 3]
    # the inputs: quint8 as they arrive; zero point 0 (after a fused ReLU) unsigned 8 bits, else q - zp
    # signed at 9 bits
    seen = {}
    hooks = [layers[n].register_forward_pre_hook(lambda m, a, n=n: seen.__setitem__(n, a[0])) for n in STATIC]
    _run(model, torch.randn(2, 3, 8, 8))
    for h in hooks:
        h.remove()
    for name, r in zip(STATIC, report.layers):
        x = seen[name]
        q, step, bits, signed = input_integers(layers[name], x, 8, name)
        zp = x.q_zero_point()
        assert torch.equal(q, x.int_repr().to(torch.int32) - zp) and float(step) == x.q_scale()
        assert (bits, signed) == ((8, False) if zp == 0 else (9, True)) and r.a_bits == bits
    # the HW of torch.ao's own codes
    codes = np.concatenate([layers[n].weight().int_repr().numpy().reshape(-1) for n in STATIC]).astype(np.int64)
    want = sum(bin(abs(int(v))).count("1") for v in codes) / codes.size
    assert hw_stats(model)["total"]["mean_hw"] == pytest.approx(want, rel=1e-12, abs=0)


def test_static_model_on_a_lossless_crossbar_is_its_own_quantized_output():
    """The crossbar's readings times the steps, plus the bias, the fused ReLU applied and requantized
    to each module's output scale: torch.ao's own quantized model, layer by layer."""
    model = _static()
    x = torch.randn(16, 3, 8, 8)
    want = _run(model, x)
    got = crossbar_forward(model, x, LOSSLESS)
    step = model.module.g.scale                        # the last layer's output quantum
    diff = (got - want).abs()
    assert float(diff.max()) <= 2 * step + 1e-9        # requantization ties may round one way or the other
    assert float((diff > 1e-9).float().mean()) <= 0.01
    # every quantized layer's own output, as quantized tensors
    outs = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: outs.__setitem__(n, o))
             for n, m in model.named_modules() if n in STATIC]
    crossbar_forward(model, x, LOSSLESS)
    for h in hooks:
        h.remove()
    assert all(o.is_quantized and o.dtype == torch.quint8 for o in outs.values())
    assert int(outs["module.c1"].int_repr().min()) >= outs["module.c1"].q_zero_point()   # its fused ReLU


def test_static_model_on_neurosim_with_calibrated_references():
    model = _static()
    cfg = CrossbarConfig.preset("neurosim-1.3", adc_reference="calibrated")
    refs = calibrate_adc(model, torch.randn(16, 3, 8, 8), cfg)
    assert sorted(refs.full_scale) == STATIC
    x = torch.randn(16, 3, 8, 8)
    got, want = crossbar_forward(model, x, cfg, references=refs), _run(model, x)
    assert got.shape == want.shape and got.dtype == want.dtype
    # these layers are small (<= 72 rows): NeuroSim's 5-bit sense amp with calibrated references reads
    # them to within a few output steps
    assert float((got - want).abs().mean()) < 0.1 * float(want.abs().mean())


@pytest.mark.parametrize("fused", [False, True])
def test_dynamic_linear_reads_the_inputs_its_op_quantizes(fused):
    model = _dynamic(fused)
    x = torch.randn(3, 5, 16) * 2 + 0.3                # tokens: any leading dimensions
    got = crossbar_forward(model, x, LOSSLESS)
    np.testing.assert_allclose(got.numpy(), _run(model, x).numpy(), rtol=0, atol=1e-6)
    report = estimate_energy(model, x)
    assert [r.vectors for r in report.layers] == [5.0, 5.0]
    # reduce_range (module version 4): 7-bit codes; signed inputs as q - zero point at one bit more,
    # the ReLU's non-negative outputs unsigned
    assert [r.a_bits for r in report.layers] == [8, 7]
    first = model[0] if fused else model[0][0]
    q, step, bits, signed = input_integers(first, x, 8, "0")
    scale, zp = torch._choose_qparams_per_tensor(x, True)
    assert (bits, signed, float(step)) == (8, True, scale) and int(q.max()) <= 127 - zp


def test_dynamic_linear_before_version_4_and_static_layers_given_floats():
    """A dynamic Linear saved before module version 4 quantizes its inputs without reduce_range (8-bit
    codes, torch/ao/nn/quantized/dynamic/modules/linear.py), as torch's own choice of parameters gives
    them, float64 inputs included; a static layer takes only its 8-bit per-tensor quantized input, and
    a float one is named."""
    model = _dynamic(False)
    first = model[0][0]
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 2 + 0.3
    for version, reduce_range, width in ((4, True, 7), (3, False, 8)):
        first.version = version
        q, step, bits, signed = input_integers(first, x, 8, "0")
        scale, zp = torch._choose_qparams_per_tensor(x.float(), reduce_range)
        codes = torch.quantize_per_tensor(x.float(), scale, zp, torch.quint8).int_repr().to(torch.int32)
        assert (bits, signed, float(step)) == (width + 1, True, scale)      # q - zero point: one bit more
        assert torch.equal(q.to(torch.int32), codes - zp)
    static = nnq.Linear(16, 4)
    with pytest.raises(ValueError, match=r"layer 'lin': torch.ao's Linear takes an 8-bit per-tensor quantized input, "
                                         r"got torch.float32"):
        input_integers(static, torch.randn(2, 16), 8, "lin")


def test_frozen_and_unreadable_layers_are_named():
    model = _dynamic(False)
    with pytest.raises(ValueError, match=r"\['0.0', '1'\] are torch.ao's quantized modules .*no gradient"):
        HamQRegularizer(model, weighting="params")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = tq.quantize_dynamic(nn.Sequential(nn.Linear(16, 4)), {nn.Linear}, dtype=torch.float16)
    cov = coverage(half)
    assert not cov.covered and "torch.float16 weights is not mapped" in cov.uncovered[0][2]
    # a layer hamqcore does not map (Conv3d) is counted, not hidden
    cov = hamqcore.coverage(nn.Sequential(nnq.Conv3d(2, 2, 1)))
    assert cov.uncovered[0][:2] == ("0.weight", 4) and "not mapped" in cov.uncovered[0][2]
    # a fused post-op hamqcore does not read (ConvAdd2d's second input): its energy, not its output
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "onednn"         # the engine torch runs conv2d_add on (packed under it)
    try:
        add = nniq.ConvAdd2d(3, 3, 1)
        add.set_weight_bias(torch.quantize_per_tensor(torch.randn(3, 3, 1, 1), 0.05, 0, torch.qint8), None)

        class TwoInputs(nn.Module):
            def __init__(self):
                super().__init__()
                self.add = add

            def forward(self, x):
                xq = torch.quantize_per_tensor(x, 0.05, 128, torch.quint8)
                return self.add(xq, xq).dequantize()

        m = TwoInputs()
        assert estimate_energy(m, torch.randn(1, 3, 4, 4), LOSSLESS).layers[0].kind == "ConvAdd2d"
        with pytest.raises(ValueError, match="ConvAdd2d applies a post-op hamqcore does not read"):
            crossbar_forward(m, torch.randn(1, 3, 4, 4), LOSSLESS)
    finally:
        torch.backends.quantized.engine = engine


def test_bit_prices_price_torch_ao_layers():
    model = _static()
    prices = bit_prices(model, torch.randn(2, 3, 8, 8), CrossbarConfig.preset("neurosim-1.3"))
    assert sorted(prices) == STATIC and all(p.shape in ((8,), (9,)) for p in prices.values())
    assert all(p.sum() > 0 for p in prices.values())


def test_a_dynamically_quantized_transformer_encoder():
    """quantize_dynamic's usual target: a Transformer encoder. Its Linear layers are read on token
    inputs; nn.MultiheadAttention stays float in torch.ao (its out_proj is not converted), and the
    coverage says so. (torch's own encoder fast path does not run a dynamic Linear: it reads
    ``weight.device``; it is switched off here, as for any such model.)"""
    torch.manual_seed(0)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(40, 32)
            layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(32, 5)

        def forward(self, t):
            return self.head(self.enc(self.emb(t)).mean(1))

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = tq.quantize_dynamic(Encoder().eval(), {nn.Linear}, dtype=torch.qint8)
        cov = coverage(model)
        assert [n for n, _ in cov.covered] == ["enc.layers.0.linear1.weight", "enc.layers.0.linear2.weight",
                                               "enc.layers.1.linear1.weight", "enc.layers.1.linear2.weight",
                                               "head.weight"]
        assert {n.rsplit(".", 2)[-2] for n, _, _ in cov.uncovered} == {"self_attn", "out_proj"}
        t = torch.randint(0, 40, (3, 7))
        with pytest.warns(UserWarning, match="crossbar_forward"):
            got = crossbar_forward(model, t, LOSSLESS)
        np.testing.assert_allclose(got.numpy(), _run(model, t).numpy(), rtol=0, atol=1e-6)
        with pytest.warns(UserWarning, match="estimate_energy: 4 weight tensor"):
            report = estimate_energy(model, t)
        assert [r.vectors for r in report.layers] == [7.0, 7.0, 7.0, 7.0, 1.0]
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def test_torch_ao_qat_modules_are_noted_as_read_on_hamqcores_grid():
    """prepare_qat's modules subclass nn.Linear / nn.Conv2d: the walks read them as float layers, and the
    coverage says so, with the pointer to convert()."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tq.QuantWrapper(nn.Sequential(nn.Linear(8, 4))).train()
        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.prepare_qat(model, inplace=True)
    cov = coverage(model)
    assert [n for n, _ in cov.covered] == ["module.0.weight"]
    assert any("torch.ao QAT modules (module.0, ...)" in note and "convert" in note for note in cov.notes)
    assert not any("QAT" in note for note in coverage(_dynamic(False)).notes)
