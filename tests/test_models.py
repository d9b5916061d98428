"""Models nobody in this project wrote: transformers (tokens, nn.MultiheadAttention), depthwise and
grouped convolutions, and coverage that says what is and is not mapped (issue 22)."""
import warnings

import pytest
import torch
import torch.nn as nn

import hamqcore
from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import crossbar_forward, estimate_energy
from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.quant import QMultiheadAttention, quantize_model
from hamqcore.rounding import hw_aware_round

LOSSLESS = CrossbarConfig.preset("bitline")          # an ideal ADC: the crossbar computes exactly


class TokenEncoder(nn.Module):
    """A BERT-like encoder: token embedding, two transformer layers, a linear head."""

    def __init__(self, vocab=40, d=32, heads=4, classes=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, 2 * d, batch_first=True, dropout=0.0), 2,
                                         enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens)).mean(1))


def _plain(q: QMultiheadAttention) -> QMultiheadAttention:
    """The same module with float projections: only the attention arithmetic is left to compare."""
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        old = getattr(q, name)
        new = nn.Linear(old.in_features, old.out_features, old.bias is not None)
        new.load_state_dict({k: v for k, v in old.state_dict().items() if k in ("weight", "bias")})
        setattr(q, name, new)
    return q


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kdim", [None, 12])
def test_quantized_attention_computes_what_multihead_attention_does(batch_first, kdim):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=batch_first, kdim=kdim, vdim=kdim).eval()
    q = _plain(QMultiheadAttention(mha)).eval()
    n, lq, lk = 3, 5, 6
    shape = lambda length, e: (n, length, e) if batch_first else (length, n, e)  # noqa: E731
    query = torch.randn(shape(lq, 16))
    key = torch.randn(shape(lk, kdim or 16))
    value = torch.randn(shape(lk, kdim or 16))
    bool_mask = torch.rand(lq, lk) > 0.6
    bool_mask[:, 0] = False
    padding = torch.zeros(n, lk, dtype=torch.bool)
    padding[0, -2:] = True
    for kw in (dict(), dict(attn_mask=bool_mask), dict(attn_mask=torch.randn(lq, lk)),
               dict(attn_mask=torch.randn(n * 4, lq, lk)), dict(key_padding_mask=padding),
               dict(attn_mask=bool_mask, key_padding_mask=padding, average_attn_weights=False),
               dict(need_weights=False)):
        a, wa = mha(query, key, value, **kw)
        b, wb = q(query, key, value, **kw)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        assert (wa is None) == (wb is None)
        if wa is not None:
            torch.testing.assert_close(wb, wa, rtol=1e-5, atol=1e-6)
    # unbatched input
    a, _ = mha(query[0] if batch_first else query[:, 0], key[0] if batch_first else key[:, 0],
               value[0] if batch_first else value[:, 0])
    b, _ = q(query[0] if batch_first else query[:, 0], key[0] if batch_first else key[:, 0],
             value[0] if batch_first else value[:, 0])
    torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_quantized_attention_biases_dtype_causal_unbatched_padding_and_dropout():
    """What the test above leaves alike: distinct q/k/v biases (or none), different key and value widths,
    float64, a causal hint with or without its mask, an unbatched query with its padding mask, and
    attention dropout while training (the same random draws as torch's)."""
    for bias, dtype in ((True, torch.float64), (False, torch.float32)):
        torch.manual_seed(1)
        mha = nn.MultiheadAttention(8, 2, bias=bias, kdim=6, vdim=5, dropout=0.3, dtype=dtype)
        if bias:
            with torch.no_grad():
                mha.in_proj_bias.copy_(torch.randn(24, dtype=dtype))
                mha.out_proj.bias.copy_(torch.randn(8, dtype=dtype))
        mha.eval()
        built = QMultiheadAttention(mha)
        assert all(getattr(built, p).weight.dtype == dtype and (getattr(built, p).bias is None) == (not bias)
                   for p in ("q_proj", "k_proj", "v_proj", "out_proj"))
        q = _plain(built).to(dtype).eval()       # (the float stand-ins are made in the default dtype)
        query, key, value = (torch.randn(4, 3, 8, dtype=dtype), torch.randn(5, 3, 6, dtype=dtype),
                             torch.randn(5, 3, 5, dtype=dtype))
        causal = torch.ones(4, 5, dtype=torch.bool).triu(1)
        a, wa = mha(query, key, value, attn_mask=causal)
        for kw in (dict(is_causal=True), dict(attn_mask=causal, is_causal=True), dict(attn_mask=causal)):
            b, wb = q(query, key, value, **kw)
            torch.testing.assert_close(b, a)
            torch.testing.assert_close(wb, wa)
        pad = torch.tensor([False, False, True, False, True])      # unbatched: a 1-D padding mask
        a, wa = mha(query[:, 0], key[:, 0], value[:, 0], key_padding_mask=pad, average_attn_weights=False)
        b, wb = q(query[:, 0], key[:, 0], value[:, 0], key_padding_mask=pad, average_attn_weights=False)
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(wb, wa)
        assert wb.shape == (2, 4, 5)
        mha.train()
        q.train()
        torch.manual_seed(7)
        a, wa = mha(query, key, value)
        torch.manual_seed(7)
        b, wb = q(query, key, value)
        torch.testing.assert_close(b, a)
        torch.testing.assert_close(wb, wa)
        mha.eval()
        assert not torch.allclose(b, mha(query, key, value)[0])   # dropout did act


def test_a_float_attention_is_reported_and_warned_about():
    model = TokenEncoder()
    cov = hamqcore.coverage(model)
    missing = {name for name, _, _ in cov.uncovered}
    assert "enc.layers.0.self_attn.in_proj_weight" in missing and "enc.layers.1.self_attn.out_proj.weight" in missing
    assert ("emb.weight", 40 * 32, "an embedding is a table lookup, not a crossbar MAC") in cov.excluded
    assert "in_proj_weight" in str(cov)
    with pytest.warns(UserWarning, match=r"HamQRegularizer: 4 weight tensor\(s\) holding .* not mapped"):
        HamQRegularizer(model, example_input=torch.randint(0, 40, (1, 7)))
    with pytest.warns(UserWarning, match="estimate_energy: 4 weight tensor"):
        estimate_energy(model, torch.randint(0, 40, (2, 7)), LOSSLESS)


def test_torch_ao_eager_quantized_layers_are_counted_with_their_packed_weights():
    """torch.ao's converted modules keep packed weights that parameters() never lists: the coverage
    counts them and maps them (tests/test_interop_torch_ao.py reads their integers)."""
    import torch.ao.quantization as tq
    torch.manual_seed(0)
    float_part = nn.Linear(6, 6)
    qpart = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 6)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # torch's deprecation notes
        wrapped = tq.QuantWrapper(qpart)
        wrapped.qconfig = tq.get_default_qconfig("fbgemm")
        tq.prepare(wrapped, inplace=True)
        wrapped(torch.randn(4, 3, 8, 8))
        tq.convert(wrapped, inplace=True)
    model = nn.Sequential(wrapped, float_part)
    cov = hamqcore.coverage(model)
    assert cov.covered == [("0.module.0.weight", 216), ("0.module.3.weight", 1728), ("1.weight", 36)]
    assert not cov.uncovered and cov.parameters == 216 + 1728 + 36 + 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = estimate_energy(model, torch.randn(1, 3, 8, 8), LOSSLESS)
    assert not [w for w in caught if "not mapped onto the crossbar" in str(w.message)]   # nothing to warn about
    assert [r.name for r in report.layers] == ["0.module.0", "0.module.3", "1"]
def test_a_quantized_encoder_is_covered_end_to_end():
    torch.manual_seed(0)
    model = quantize_model(TokenEncoder())
    cov = hamqcore.coverage(model)
    linear_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert not cov.uncovered and sum(n for _, n in cov.covered) == linear_weights   # every Linear weight
    assert any("QK^T" in note for note in cov.notes)
    tokens = torch.randint(0, 40, (4, 9))
    model.eval()
    digital = model(tokens)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # nothing left to warn about
        reg = HamQRegularizer(model, example_input=tokens[:1])
        report = estimate_energy(model, tokens, LOSSLESS)
        on_xbar = crossbar_forward(model, tokens, LOSSLESS)
    assert len(report.layers) == 2 * 6 + 1 and report.coverage.covered_fraction == 1.0
    torch.testing.assert_close(on_xbar, digital, rtol=1e-5, atol=1e-5)     # tokens: Linear on (B, T, C)
    # every projection is read once per token: the same coefficient as the feed-forward layers
    coef = reg.coef
    assert coef["enc.layers.0.self_attn.q_proj"] == pytest.approx(coef["enc.layers.0.linear1"], rel=1e-6, abs=0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    before = hw_stats(model)["total"]["mean_hw"]
    for _ in range(15):
        opt.zero_grad()
        reg.lam = 3.0
        reg().backward()
        opt.step()
    assert hw_stats(model)["total"]["mean_hw"] < before
    rounded, stats = hw_aware_round(model.eval(), tokens, lam=0.01)
    assert stats["total"]["coverage"]["covered_fraction"] == 1.0


def test_depthwise_and_grouped_convs_compute_exactly_on_a_lossless_crossbar():
    """A MobileNetV2-like inverted residual (expand 1x1, depthwise 3x3 with ReLU6, project 1x1, residual)."""
    torch.manual_seed(0)

    class Inverted(nn.Module):
        def __init__(self):
            super().__init__()
            self.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
            self.dw = nn.Sequential(nn.Conv2d(24, 24, 3, 2, 1, groups=24, bias=False), nn.BatchNorm2d(24), nn.ReLU6())
            self.grouped = nn.Conv2d(24, 24, 3, 1, 1, groups=4)
            self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            y = self.project(self.grouped(self.dw(self.expand(x))))
            return self.head((y + x[:, :, ::2, ::2]).mean((2, 3)))

    model = quantize_model(Inverted())
    x = torch.randn(4, 8, 10, 10)
    model(x)
    model.eval()
    torch.testing.assert_close(crossbar_forward(model, x, LOSSLESS), model(x), rtol=1e-4, atol=1e-5)
    rounded, stats = hw_aware_round(model, x, lam=0.01)
    assert stats["total"]["hw_after"] <= stats["total"]["hw_before"]


def test_a_target_sets_lam_by_itself():
    """target=0.6: with a task loss against it, the controller raises lam until the penalty has fallen to
    about 60 % of its start, then lowers it again (nothing but the task raises the HW, so the ratio
    can undershoot a little)."""
    torch.manual_seed(0)
    model = quantize_model(nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 4)))
    x = torch.randn(64, 3, 8, 8)
    model(x)
    with torch.no_grad():
        y = model(x).clone()                       # the task: keep the model's function
    reg = HamQRegularizer(model, lam=0.01, weighting="params", target=0.6, gain=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lams, ratios = [], []
    for _ in range(600):
        opt.zero_grad()
        (((model(x) - y) ** 2).mean() * 100 + reg()).backward()
        opt.step()
        lams.append(reg.lam)
        ratios.append(reg.ratio)
    assert max(lams) > 10 * 0.01 and lams[-1] < max(lams)   # raised while above the target, lowered after
    assert abs(ratios[-1] - 0.6) < 0.1 and min(ratios) > 0.45
    with pytest.raises(ValueError, match=r"target must be a fraction in \(0, 1\)"):
        HamQRegularizer(model, weighting="params", target=1.5)
    with pytest.raises(ValueError, match="target needs a starting lam > 0"):
        HamQRegularizer(model, lam=0.0, weighting="params", target=0.5)


def test_a_layer_the_forward_pass_never_calls_is_reported():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(8, 4)
            self.spare = nn.Linear(8, 64)       # 520 parameters, never called

        def forward(self, x):
            return self.used(x)

    model = quantize_model(Unused())
    x = torch.randn(3, 8)
    model(x)
    with pytest.warns(UserWarning, match=r"estimate_energy: 1 weight tensor.*spare.weight \(its layer is never called"):
        report = estimate_energy(model, x, LOSSLESS)
    assert [u[0] for u in report.coverage.uncovered] == ["spare.weight"]
    with pytest.warns(UserWarning, match="HamQRegularizer: 1 weight tensor.*spare.weight"):
        HamQRegularizer(model, example_input=x[:1])
    float_model = Unused()
    float_model.used = quantize_model(nn.Sequential(nn.Linear(8, 4)))[0]
    with pytest.warns(UserWarning, match="crossbar_forward: 1 weight tensor.*a float layer: computed digitally"):
        crossbar_forward(float_model, x, LOSSLESS)


# --- MobileNetV2 as torchvision defines it (torchvision/models/mobilenetv2.py: inverted residual
# settings t, c, n, s; Conv-BN-ReLU6; last channel 1280; width 1.0), transcribed: the issue measured a
# 3.7 % lossless-crossbar discrepancy on timm's MobileNetV2 (timm does not import here: it needs
# torchvision, whose PyPI build does not import beside the CPU torch)


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _conv_bn(i, o, k, s, groups=1):
    return nn.Sequential(nn.Conv2d(i, o, k, s, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(o), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        self.use_res = stride == 1 and inp == oup
        layers = [] if t == 1 else [_conv_bn(inp, hidden, 1, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
                   nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=10, width=1.0):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        inp = _make_divisible(32 * width)
        last = _make_divisible(1280 * max(1.0, width))
        feats = [_conv_bn(3, inp, 3, 2)]
        for t, c, n, s in setting:
            out = _make_divisible(c * width)
            for i in range(n):
                feats.append(_InvertedResidual(inp, out, s if i == 0 else 1, t))
                inp = out
        feats.append(_conv_bn(inp, last, 1, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight); nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01); nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.mark.parametrize("calibrated", [True, False])
def test_a_full_mobilenet_v2_computes_exactly_on_a_lossless_crossbar(calibrated):
    """Every one of MobileNetV2's 53 layers (17 depthwise) is read exactly, and the whole network's
    output equals the digital one to float rounding, with or without a training pass that sets the
    activation ranges first."""
    from hamqcore.energy import _crossbar_output, read_module
    from hamqcore.layers import capture_layer_inputs

    torch.manual_seed(0)
    model = quantize_model(MobileNetV2())
    if calibrated:
        with torch.no_grad():
            model.train()(torch.randn(8, 3, 32, 32))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    out = crossbar_forward(model, x, LOSSLESS)
    assert float((out - ref).norm() / ref.norm()) < 1e-5
    captured = capture_layer_inputs(model, x)
    assert len(captured) == 53 and sum(m.groups > 1 for _, m, _ in captured if isinstance(m, nn.Conv2d)) == 17
    for name, m, xi in captured:
        with torch.no_grad():
            digital = m(xi)
        on_xbar = _crossbar_output(m, xi, digital, read_module(m, xi, LOSSLESS, name), name)
        torch.testing.assert_close(on_xbar, digital, rtol=1e-5, atol=1e-6 * float(digital.abs().max()))


def test_an_exported_program_maps_like_the_model_it_came_from():
    """hamqcore.layers.from_exported: torch.export's aten.linear / conv calls on stored weights become
    Linear / Conv modules again, under their owners' names, so every walk reads the program as the model
    (the same layers and energy); a call on a computed weight stays an operation and is reported."""
    import torch.nn.functional as F

    from hamqcore.layers import from_exported
    from hamqcore.study.models import resnet18

    class Scaled(nn.Module):                  # a weight computed in forward: not a stored layer weight
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(10, 16))

        def forward(self, x):
            return F.linear(x, self.w * 2)

    torch.manual_seed(0)
    model = nn.Sequential(resnet18(width=4, num_classes=16), Scaled()).eval()
    x = torch.randn(2, 3, 32, 32)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    mapped = from_exported(program)
    xs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(mapped(xs), program.module()(xs))
    want, got = estimate_energy(model[0], xs), estimate_energy(mapped, xs)
    assert [r.name for r in got.layers] == [f"0.{r.name}" for r in want.layers]
    assert got.total_energy == pytest.approx(want.total_energy, rel=1e-12, abs=0)
    cov = hamqcore.coverage(mapped)
    assert [n for n, _, _ in cov.uncovered] == ["1.w"]
