"""The quantizers of hamqcore.quant against their definitions, computed by hand: the activation
quantizer's running max (its EMA, its sign decided once, an all-zero or empty first batch), LSQ's
initial steps and gradient scaling (Esser et al., ICLR 2020) for weights and activations, the weight
modes ("max", "fixed", "lsq"), and the torch path of the integer grid (other dtypes, broken steps)."""
import math

import pytest
import torch
import torch.nn as nn

from hamqcore.quant import (ActQuantizer, QConv1d, QConv2d, QLinear, QMultiheadAttention, WeightQuantizer, grid_integers,
                            quantize_activation, quantize_model)


def _fq(x, s, lo, hi):
    return torch.clamp(torch.round(x / s), lo, hi) * s


def test_running_max_by_hand():
    q = ActQuantizer(8)                                  # running_max, momentum 0.1, sign from the data
    assert q.signed is None and not bool(q.initialized)
    x1 = torch.tensor([[0.0, 0.5, 2.0, 1.0]])
    y1 = q(x1)                                           # the first batch sets the max and the sign
    assert q.signed is False and float(q.running_max) == 2.0 and bool(q.initialized)
    assert torch.equal(y1, _fq(x1, 2.0 / 255, 0, 255))
    x2 = torch.tensor([[4.0, 0.25, 1.0, 0.0]])
    q(x2)                                                # training: EMA (1 - m) max + m amax
    assert float(q.running_max) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0, rel=1e-7)
    x3 = torch.tensor([[-3.0, 1.0, 0.5, 5.0]])           # the sign stays what the first batch decided:
    y3 = q(x3)                                           # negatives clamp to 0
    assert q.signed is False and float(q.running_max) == pytest.approx(0.9 * 2.2 + 0.1 * 5.0, rel=1e-6)
    s = float(q.running_max) / 255
    assert torch.equal(y3, _fq(x3, torch.tensor(s), 0, 255)) and float(y3[0, 0]) == 0.0
    q.eval()
    before = float(q.running_max)
    y4 = q(torch.full((1, 4), 100.0))                    # eval: the range is held, values saturate
    assert float(q.running_max) == before and torch.allclose(y4, torch.full((1, 4), 255 * before / 255))
    ints, step, signed = q.integers(x3)
    assert signed is False and torch.equal(ints, torch.round(x3 / step).clamp(0, 255).to(torch.int64))
    fresh = ActQuantizer(8)                              # integers() before any forward: observes first
    ints, step, signed = fresh.integers(x2)
    assert bool(fresh.initialized) and float(step) == pytest.approx(4.0 / 255) and ints.dtype == torch.int64
    assert torch.equal(ints, torch.round(x2 / step).clamp(0, 255).to(torch.int64))


def test_running_max_signed_zero_and_empty_batches():
    q = ActQuantizer(4)
    x = torch.tensor([[-1.0, 0.5, 0.25, -2.0]])
    assert torch.equal(q(x), _fq(x, 2.0 / 7, -8, 7)) and q.signed is True   # qmax 2^(b-1) - 1 for the scale
    q.momentum = 0.5
    q(torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    assert float(q.running_max) == pytest.approx(2.5)
    z = ActQuantizer(8)
    yz = z(torch.zeros(2, 3))                            # an all-zero first batch: step 1, not 0 / 0
    assert float(z.running_max) == 0.0 and torch.equal(yz, torch.zeros(2, 3))
    assert float(z.scale(torch.zeros(1))) == 1.0
    e = ActQuantizer(8)
    e(torch.zeros(0, 3))                                 # an empty batch: max 0
    assert float(e.running_max) == 0.0 and bool(e.initialized)
    fixed = ActQuantizer(8, signed=True)                 # a declared sign is kept
    fixed(torch.tensor([[1.0, 2.0]]))
    assert fixed.signed is True and int(fixed.signed_flag) == 1
    assert int(ActQuantizer(8).signed_flag) == -1 and ActQuantizer(8).signed_flag.dtype == torch.int8
    with pytest.raises(ValueError, match="a_bits"):
        ActQuantizer(0)
    with pytest.raises(ValueError, match="act_mode must be one of 'running_max', 'lsq', got 'ema'"):
        ActQuantizer(8, mode="ema")


@pytest.mark.parametrize("signed", [False, True])
def test_lsq_activation_step_by_hand(signed):
    """LSQ: the step starts at 2 mean|x| / sqrt(qmax); forward clamp(round(x / s), lo, hi) s; the step's
    gradient is g sum_i d(out_i)/ds with d/ds = round(x/s) - x/s inside the range and the clamped level
    outside, g = 1 / sqrt(numel(x[0]) qmax)."""
    torch.manual_seed(0)
    q = ActQuantizer(4, mode="lsq")
    x = torch.randn(3, 10) * 0.2                        # a step well below 1 (its floor is 1e-8)
    if not signed:
        x = x.abs()
    x[0, 0], x[1, 1] = 4.0, (-4.0 if signed else 0.0)    # outside the range: clamped
    lo, hi, qmax = (-8, 7, 7) if signed else (0, 15, 15)
    y = q(x)
    s0 = 2 * x.abs().mean() / math.sqrt(qmax)
    assert float(q.step.detach()) == pytest.approx(float(s0), rel=1e-6) and q.signed is signed and float(s0) < 0.5
    assert torch.allclose(y, _fq(x, s0, lo, hi), atol=1e-6)
    y.sum().backward()
    v = x / s0
    r = torch.round(v)
    inside = (r >= lo) & (r <= hi)
    d = torch.where(inside, r - v, torch.clamp(r, lo, hi))
    g = 1 / math.sqrt(10 * qmax)
    assert float(q.step.grad) == pytest.approx(float(g * d.sum()), rel=1e-5)
    assert q(torch.zeros(3, 10)).abs().max() == 0                      # an initialised step stays
    z = ActQuantizer(8, mode="lsq")
    z(torch.zeros(2, 4))
    assert float(z.step.detach()) == pytest.approx(1e-8)                        # clamped away from 0


def test_weight_modes_by_hand():
    torch.manual_seed(1)
    w = torch.randn(3, 2, 5) * torch.tensor([0.1, 1.0, 3.0]).reshape(3, 1, 1)
    mx = w.abs().reshape(3, -1).max(dim=1).values.reshape(3, 1, 1) / 7
    # "max": recomputed from the weights every call, no parameters, nothing stored
    q = WeightQuantizer(3, 4, mode="max")
    assert list(q.parameters()) == [] and list(q.buffers()) == []
    assert torch.allclose(q.scale(w), mx) and torch.allclose(q(w), _fq(w, mx, -7, 7))
    assert torch.allclose(q.scale(2 * w), 2 * mx)
    # "fixed": the max step of the first weights it sees, then held
    f = WeightQuantizer(3, 4, mode="fixed")
    assert not bool(f.initialized)
    assert torch.allclose(f(w), _fq(w, mx, -7, 7)) and bool(f.initialized)
    assert torch.allclose(f.scale(2 * w), mx) and torch.allclose(f(2 * w), _fq(2 * w, mx, -7, 7))
    f.calibrate(2 * w)
    assert torch.allclose(f.scale(w), 2 * mx)
    ints, step = f.integers(2 * w, torch.int16)
    assert ints.dtype == torch.int16 and torch.equal(ints, torch.round(2 * w / step).clamp(-7, 7).to(torch.int16))
    # "lsq": per channel 2 mean|w_c| / sqrt(qmax); the step's gradient scaled by 1 / sqrt(numel(w[0]) qmax)
    lq = WeightQuantizer(3, 4)
    wl = w.clone()
    y = lq(wl)
    s0 = 2 * w.abs().reshape(3, -1).mean(dim=1) / math.sqrt(7)
    assert torch.allclose(lq.step.detach(), s0, rtol=1e-6)
    assert torch.allclose(y, _fq(w, s0.reshape(3, 1, 1), -7, 7), atol=1e-6)
    y.sum().backward()
    v = w / s0.reshape(3, 1, 1)
    r = torch.round(v)
    d = torch.where(r.abs() <= 7, r - v, r.clamp(-7, 7))
    g = 1 / math.sqrt(10 * 7)
    assert torch.allclose(lq.step.grad, g * d.reshape(3, -1).sum(dim=1), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="weight_mode must be one of 'max', 'fixed', 'lsq', got 'MAX'"):
        WeightQuantizer(3, 4, mode="MAX")
    with pytest.raises(ValueError, match="w_bits"):
        WeightQuantizer(3, 1)


def test_grid_integers_dtype():
    w = torch.randn(3, 4)
    assert grid_integers(w, 8).dtype == torch.int64 and grid_integers(w, 8, dtype=torch.int32).dtype == torch.int32


def test_grid_integers_torch_path():
    """Weights the fused C++ pass does not take (half precision, a step of another dtype or width, a
    step that is not finite and positive) get torch's round(w / step).clamp(-qmax, qmax) in the dtype
    asked for; a 0-d weight is one row."""
    torch.manual_seed(2)
    w = torch.randn(4, 6) * 3
    step = torch.full((4, 1), 0.05)                      # most weights clamp at +-127
    want = torch.round(w / step).clamp(-127, 127)
    for ww, ss in ((w.half(), step.half()), (w, step.double()), (w, torch.full((1, 1), 0.05)),
                   (w.double(), step.double())):
        got = grid_integers(ww, 8, ss, torch.int16)
        assert got.dtype == torch.int16 and torch.equal(got.to(torch.float64), torch.round(
            ww.double() / ss.double()).clamp(-127, 127).to(ww.dtype).double() if ww.dtype == torch.half
            else want.double()), (ww.dtype, ss.dtype, ss.shape)
    broken = step.clone()
    broken[1] = 0.0                                      # a zero step: its row saturates at +-qmax
    got = grid_integers(w, 8, broken)
    assert got.dtype == torch.int64 and torch.equal(got[1], torch.sign(w[1]).to(torch.int64) * 127)
    assert torch.equal(got[0], want[0].to(torch.int64))
    scalar = grid_integers(torch.tensor(0.3), 4)         # a 0-d weight: its own max step, level 7
    assert scalar.shape == () and int(scalar) == 7
    for empty in (torch.zeros(0, 3), torch.zeros(3, 0)):  # a layer with no outputs or no inputs
        assert grid_integers(empty, 8).shape == empty.shape
        assert torch.equal(WeightQuantizer(empty.shape[0], 8, mode="max").scale(empty), torch.ones(empty.shape[0], 1))


def test_quantize_activation_by_hand():
    x = torch.tensor([[0.0, 1.0, 3.0, 6.0]])
    ints, scale, signed = quantize_activation(x, 4)
    assert signed is False and float(scale) == pytest.approx(6 / 15)
    assert torch.equal(ints, torch.tensor([[0, 2, 8, 15]])) and ints.dtype == torch.int64
    xs = torch.tensor([[-6.0, 1.0, 3.0, 2.0]])
    ints, scale, signed = quantize_activation(xs, 4)
    assert signed is True and float(scale) == pytest.approx(6 / 7)
    assert torch.equal(ints, torch.tensor([[-7, 1, 4, 2]]))
    ints, scale, signed = quantize_activation(torch.tensor([[-20.0, 9.0, 30.0]]), 4, signed=False)
    assert float(scale) == pytest.approx(2.0)            # a declared unsigned range: max |x| / 15,
    assert torch.equal(ints, torch.tensor([[0, 4, 15]]))  # negatives clamp to 0
    ints, scale, signed = quantize_activation(torch.zeros(2, 2), 8)
    assert float(scale) == 1.0 and signed is False and not ints.any()
    ints, scale, _ = quantize_activation(torch.zeros(0, 2), 8)
    assert float(scale) == 1.0 and ints.shape == (0, 2)


def test_quantize_model_passes_every_mode_and_names_bad_ones():
    model = quantize_model(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), 6, 5, weight_mode="fixed",
                           act_mode="lsq")
    layers = [m for m in model.modules() if hasattr(m, "w_quant")]
    assert len(layers) == 2
    for m in layers:
        assert (m.w_bits, m.a_bits, m.w_quant.mode, m.a_quant.mode) == (6, 5, "fixed", "lsq")
    with pytest.raises(ValueError, match="a_bits must be an integer in 2..16, got 1"):
        quantize_model(nn.Linear(2, 2), 8, 1)
    with pytest.raises(ValueError, match="weight_mode must be one of 'max', 'fixed', 'lsq', got 'LSQ'"):
        quantize_model(nn.Linear(2, 2), 8, 8, weight_mode="LSQ")


def test_quantize_model_keeps_every_layer_attribute():
    """The swap keeps what defines each layer: shape, stride, padding and its mode, dilation, groups,
    bias, dtype, training mode and values; and the widths and modes go to every quantized layer,
    an attention's four projections too."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, bias=False,
                                  padding_mode="reflect", dtype=torch.float64),
                        nn.Conv1d(3, 5, 2, padding=1, padding_mode="circular"), nn.Linear(7, 2, dtype=torch.float64))
    net[1].train(False)
    q = quantize_model(net, 16, 16, weight_mode="fixed", act_mode="lsq")
    c2, c1, lin = q[0], q[1], q[2]
    assert type(c2) is QConv2d and type(c1) is QConv1d and type(lin) is QLinear
    for new, old in ((c2, net[0]), (c1, net[1]), (lin, net[2])):
        assert new.weight.dtype == old.weight.dtype and torch.equal(new.weight, old.weight)
        assert (new.bias is None) == (old.bias is None) and new.training == old.training
        assert (new.w_bits, new.a_bits, new.w_quant.mode, new.a_quant.mode) == (16, 16, "fixed", "lsq")
    for attr in ("stride", "padding", "dilation", "groups", "padding_mode", "kernel_size"):
        assert getattr(c2, attr) == getattr(net[0], attr) and getattr(c1, attr) == getattr(net[1], attr), attr
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)     # 16-bit grids: the float layer's output, nearly
    torch.testing.assert_close(c2(x), net[0](x), rtol=2e-3, atol=2e-3)
    mha = nn.Sequential(nn.MultiheadAttention(8, 2))
    qa = quantize_model(mha, 6, 5, weight_mode="max", act_mode="lsq")[0]
    assert type(qa) is QMultiheadAttention
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        proj = getattr(qa, p)
        assert (proj.w_bits, proj.a_bits, proj.w_quant.mode, proj.a_quant.mode) == (6, 5, "max", "lsq"), p
