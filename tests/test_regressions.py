"""Regression tests for the defects of the third adversarial probe (issue 17): each fails on the code
before its fix. Grouped as the issue lists them: wrong results, the crash, bad errors, and the
hand-made mutants the suite used to miss."""
import copy
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import hamqcore
from hamqcore import _core, ops
from hamqcore.crossbar import CrossbarConfig, simulate_layer
from hamqcore.energy import crossbar_forward, estimate_energy
from hamqcore.nn import HamQRegularizer, hw_stats
from hamqcore.pricing import bit_prices
from hamqcore.quant import quantize_model
from hamqcore.rounding import _hessians, hw_aware_round
from hamqcore.layers import im2col


def _conv_model(weight_mode="lsq", groups=1):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=groups), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 3))
    return quantize_model(m, 6, 6, weight_mode=weight_mode)


# ------------------------------------------------------------------------------------------------
# Wrong results
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("groups", [1, 4])
def test_hessian_is_exactly_symmetric_and_float64_exact(groups):
    """H was X^T X in float32 (MKL returns it asymmetric, which the C++ check refused)."""
    m = _conv_model(groups=groups)
    x = torch.randn(40, 4, 6, 6) * 3
    m(x)
    conv = m[0]
    hs = _hessians(conv, x)
    xq, scale, _ = conv.input_integers(x)
    cin = 4 // groups
    for i, h in enumerate(hs):
        assert np.array_equal(h, h.T)
        a = im2col(xq[:, i * cin:(i + 1) * cin], conv).to(torch.float64).numpy()
        np.testing.assert_allclose(h, (a.T @ a) * float(scale) ** 2, rtol=1e-15, atol=0)


def test_rounding_runs_on_depthwise_and_grouped_convs():
    m = _conv_model(groups=4)
    x = torch.randn(16, 4, 6, 6)
    m(x)
    rounded, stats = hw_aware_round(m, x, lam=0.05)
    assert stats["total"]["hw_after"] <= stats["total"]["hw_before"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -0.5])
def test_a_broken_quantizer_step_is_an_error_not_zero_cells(bad):
    """A NaN/inf step read every weight as 0 (0 ON cells, energies 'succeeded'); a step <= 0 in
    fixed mode was accepted silently."""
    m = _conv_model("fixed")
    x = torch.randn(2, 4, 6, 6)
    m(x)
    with torch.no_grad():
        m[0].w_quant.step[3] = bad
    message = r"layer '0': its weight quantizer step must be a finite number > 0"
    with pytest.raises(ValueError, match=message):
        hw_stats(m)
    with pytest.raises(ValueError, match=message):
        estimate_energy(m, x, CrossbarConfig())
    with pytest.raises(ValueError, match=message):
        bit_prices(m, x, CrossbarConfig())


def test_rounding_a_copy_leaves_a_never_run_model_untouched():
    """hw_aware_round(inplace=False) initialised the LSQ steps and activation ranges of its input."""
    m = _conv_model()
    before = copy.deepcopy(m.state_dict())
    x = torch.randn(8, 4, 6, 6)
    rounded, _ = hw_aware_round(m, x, lam=0.01)
    after = m.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert rounded is not m and bool(rounded[0].w_quant.initialized)


def test_atomic_writes_leave_no_temporary_and_clean_a_killed_writer(tmp_path):
    from hamqcore.study.io import save_atomic

    path = tmp_path / "checkpoint.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".checkpoint.pt.{dead}.tmp"
    stale.write_bytes(b"truncated")                      # what a SIGKILL mid-write leaves
    live = tmp_path / f".checkpoint.pt.{os.getppid()}.tmp"
    live.write_bytes(b"being written")                   # a writer that still runs
    save_atomic({"a": torch.ones(2)}, path)
    assert torch.load(path, weights_only=True)["a"].sum() == 2
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name])


def test_train_config_validates_every_field():
    from hamqcore.study.train import TrainConfig

    for kw, message in [
        (dict(weight_mode="maxx"), "weight_mode must be one of"),
        (dict(ds_size="XL"), "ds_size must be one of 'S', 'M', 'L'"),
        (dict(seed=-1), "seed must be an integer in 0..2147483647, got -1"),
        (dict(data="mnist5k:extra"), "mnist5k is an offline data set and takes no folder"),
        (dict(weighting="crossbar", crossbar={"preset": "neurosim-1.3"}),
         "encoding must be 'offset', the code the 'offset' mapping stores, got 'differential'"),
        (dict(quick_data=1), "quick_data must be True or False"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            TrainConfig(**kw).validate()
    with pytest.raises(TypeError, match="seed must be an integer"):
        TrainConfig(seed=1.5).validate()


def test_huge_bit_costs_are_refused_not_nan():
    """bit_cost of 1e308 per bit gave a NaN penalty (inf - inf in a slope)."""
    w = torch.randn(3, 5)
    huge = np.full(8, 1e308)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        ops.scaled_hw_penalty(w, None, 8, bit_cost=huge)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        hamqcore.scaled_hw_penalty(w.numpy(), None, 8, bit_cost=huge)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        _core.scaled_hw_penalty(w.numpy(), None, 8, "differential", "sum", "linear", None, 1.0, huge)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        hamqcore.kernels.level_cost(huge, 8)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        _core.hw_aware_round(np.ones((1, 2)), np.eye(2), np.ones(1), np.ones(1), 8, bit_cost=huge)
    big = np.full(8, 1e30)                      # finite, but beyond MAX_LEVEL_COST (1e20)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        _core.scaled_hw_penalty(w.numpy(), None, 8, "differential", "sum", "linear", None, 1.0, big)
    with pytest.raises(ValueError, match="bit_cost is too large"):
        ops.scaled_hw_penalty(w, None, 8, bit_cost=big)
    ok = np.full(8, 1e19 / 8)
    v = ops.scaled_hw_penalty(w, None, 8, bit_cost=ok)
    assert np.isfinite(float(v))


@pytest.mark.parametrize("a_signed", [2, "yes", 1.0])
def test_a_signed_must_be_a_bool(a_signed):
    with pytest.raises(TypeError, match="a_signed must be True, False or None"):
        simulate_layer(np.ones((2, 3), np.int8), np.ones((1, 3), np.int8), a_signed=a_signed)


def test_bitline_positional_energy_matches_the_exact_reference_to_2e8():
    """The wire-position deviation was summed as differences of nearly equal single-precision
    conductances (up to 1.3e-7 off the exact float64 reference); it is now the cancellation-free
    G G_model (R_model - R)."""
    import xbar_reference as ref

    rng = np.random.default_rng(7)
    for cell_bits in (1, 2, 4):
        cfg = CrossbarConfig.preset("bitline", rows=130, cols=9, cell_bits=cell_bits, mapping="differential",
                                    r_access=500.0, r_wire_col=30.0)
        w = rng.integers(-7, 8, size=(5, 300))
        x = rng.integers(0, 8, size=(3, 300))
        r = simulate_layer(w.astype(np.int16), x.astype(np.int16), cfg, 4, 3, a_signed=False)
        e = ref.simulate(w, x, cfg, 4, 3, False)
        assert r.energy["cell"] == pytest.approx(e["energy"]["cell"], rel=2e-8, abs=0)


# ------------------------------------------------------------------------------------------------
# The crash: a contiguous copy that cannot be allocated
# ------------------------------------------------------------------------------------------------

BIG_I = np.broadcast_to(np.int8(1), (2 ** 20, 2 ** 20))
BIG_F = np.broadcast_to(np.float32(1), (2 ** 20, 2 ** 20))


@pytest.mark.parametrize("call, arg", [
    (lambda: hamqcore.hamming_weight(BIG_I, 8), "q"),
    (lambda: hamqcore.total_hamming_weight(BIG_I, 8), "q"),
    (lambda: hamqcore.hw_histogram(BIG_I, 8), "q"),
    (lambda: hamqcore.pack_bitplanes(BIG_I, 8), "q"),
    (lambda: hamqcore.unpack_bitplanes(np.broadcast_to(np.uint64(0), (2, 7, 2 ** 20, 2 ** 14)), 2 ** 20, 8), "planes"),
    (lambda: hamqcore.relaxed_hw(BIG_F, 8), "x"),
    (lambda: hamqcore.relaxed_hw_penalty(BIG_F, 8), "x"),
    (lambda: hamqcore.scaled_hw_penalty(BIG_F, None, 8), "w"),
    (lambda: simulate_layer(BIG_I, np.ones((1, 2 ** 20), np.int8)), "w"),
    (lambda: simulate_layer(np.ones((2, 2 ** 20), np.int8), BIG_I), "x"),
    (lambda: _core.hw_aware_round(np.ones((1, 2 ** 20)), np.broadcast_to(np.float64(1), (2 ** 20, 2 ** 20)),
                                  np.ones(1), np.ones(1), 8), "h"),
])
def test_an_unallocatable_copy_is_a_memory_error(call, arg):
    with pytest.raises(MemoryError, match=f"cannot allocate a contiguous copy of {arg} "):
        call()


# ------------------------------------------------------------------------------------------------
# Bad errors
# ------------------------------------------------------------------------------------------------

def test_an_empty_batch_is_one_clear_error():
    m = _conv_model()
    empty = torch.zeros(0, 4, 6, 6)
    m(torch.randn(2, 4, 6, 6))
    cfg = CrossbarConfig()
    for call, name in [
        (lambda: estimate_energy(m, empty, cfg), "inputs"),
        (lambda: bit_prices(m, empty, cfg), "inputs"),
        (lambda: crossbar_forward(m, empty, cfg), "inputs"),
        (lambda: HamQRegularizer(m, example_input=empty), "example_input"),
        (lambda: hw_aware_round(m, empty), "calib_inputs"),
    ]:
        with pytest.raises(ValueError, match=f"{name} must hold at least one example, got shape \\(0, 4, 6, 6\\)"):
            call()


@pytest.mark.parametrize("bad", [np.zeros((2, 4, 6, 6), np.float32), [[1.0]], None])
def test_non_tensor_inputs_are_a_type_error(bad):
    m = _conv_model()
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor batch"):
        estimate_energy(m, bad, CrossbarConfig())
    with pytest.raises(TypeError, match="inputs must be a torch.Tensor batch"):
        bit_prices(m, bad, CrossbarConfig())


def test_set_num_threads_none_names_the_argument():
    with pytest.raises(TypeError, match="n must be an integer thread count, got None"):
        hamqcore.set_num_threads(None)


def test_an_inf_weight_is_reported_as_inf():
    """With an LSQ step computed from an inf weight, the penalty named the step (= nan)."""
    m = quantize_model(nn.Sequential(nn.Linear(4, 3)))
    with torch.no_grad():
        m[0].weight[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"w\[1, 2\] = inf is not finite"):
        HamQRegularizer(m, weighting="params")()


def _checkpoint(tmp_path):
    from hamqcore.study.train import TrainConfig, train

    out = tmp_path / "run"
    train(TrainConfig(model="resnet18", width=2, data="digits", epochs=1, warmup_epochs=0, ramp_epochs=0),
          out, progress=False, log=lambda s: None)
    return out / "checkpoint.pt"


def test_broken_checkpoints_are_one_clear_error(tmp_path):
    from hamqcore.study.train import load_checkpoint

    good = _checkpoint(tmp_path)
    ck = torch.load(good, weights_only=True)
    cases = {
        "missing": ({k: v for k, v in ck.items() if k != "classes"}, "it lacks classes"),
        "shape": ({**ck, "input_shape": [1, "8", 8]}, "input_shape must be a list of positive integers"),
        "classes": ({**ck, "classes": []}, "classes must be a non-empty list of names"),
        "config": ({**ck, "config": {**ck["config"], "w_bits": 40}}, "its training settings are not valid"),
        "weights": ({**ck, "config": {**ck["config"], "width": 3}}, "its weights do not fit its resnet18 settings"),
    }
    for name, (obj, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        with pytest.raises(ValueError, match=message):
            load_checkpoint(path)
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(2, 2), other)                  # a pickled module: not loadable with weights_only
    with pytest.raises(ValueError, match="is not a hamqcore checkpoint") as e:
        load_checkpoint(other)
    assert "weights_only=False" not in str(e.value) and "Python API" in str(e.value)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not a hamqcore checkpoint"):
        load_checkpoint(text)


def test_hamq_energy_on_a_broken_checkpoint_exits_2(tmp_path):
    good = _checkpoint(tmp_path)
    ck = torch.load(good, weights_only=True)
    step = next(k for k in ck["model"] if k.endswith("w_quant.step"))
    ck["model"][step][0] = float("nan")
    torch.save(ck, tmp_path / "nan_step.pt")
    ck2 = torch.load(good, weights_only=True)
    weight = next(k for k in ck2["model"] if k.endswith(".weight") and ck2["model"][k].dim() == 4)
    ck2["model"][weight].view(-1)[0] = float("nan")
    torch.save(ck2, tmp_path / "nan_weight.pt")
    ck3 = {**torch.load(good, weights_only=True)}
    ck3["config"] = {**ck3["config"], "data": "imagenet"}
    torch.save(ck3, tmp_path / "bad_data.pt")
    from clirun import hamq_here   # cli.main in this process (tests/test_cli.py runs it through python -m)

    for name, message in [("nan_step.pt", "weight quantizer step must be a finite number > 0"),
                          ("nan_weight.pt", "non-finite weight"),
                          ("bad_data.pt", "unknown data set 'imagenet'")]:
        proc = hamq_here("energy", str(tmp_path / name), "--images", "2", "--out", str(tmp_path / "e"))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_unusable_cache_locations_are_found_before_any_synthesis(tmp_path, monkeypatch):
    from hamqcore.study.data import DataError, synth

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HAMQCORE_CACHE", str(blocker / "cache"))    # a folder under a file
    with pytest.raises(DataError, match="is not writable"):
        synth.spoken_keywords(n_speakers=3, takes=1)
    monkeypatch.setenv("HAMQCORE_CACHE", str(tmp_path / "c"))
    (tmp_path / "c").mkdir()
    key_path = synth._cache_path(3, 1, 0, (0.1, 0.1), False)
    os.mkfifo(key_path)                                              # would block np.load forever
    assert stat.S_ISFIFO(os.stat(key_path).st_mode)
    with pytest.raises(DataError, match="is not a regular file"):
        synth.spoken_keywords(n_speakers=3, takes=1)


def test_the_cache_checksum_covers_the_content(tmp_path):
    """A cache whose values were altered (same names, dtypes, shapes) must not load."""
    from hamqcore.study.data import synth

    arrays = {"x": np.arange(24, dtype=np.float32).reshape(2, 1, 3, 4), "y": np.array([0, 1]),
              "g": np.array([0, 1]), "part": np.array([0, 2]), "speakers": np.array(["a", "b"])}
    path = tmp_path / "c.npz"
    synth._write_cache(path, arrays)
    assert synth._read_cache(path)["x"].sum() == arrays["x"].sum()
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    stored["x"] = stored["x"].copy()
    stored["x"][0, 0, 0, 0] += 1.0
    np.savez_compressed(path, **stored)
    with pytest.raises(ValueError, match="checksum mismatch"):
        synth._read_cache(path)


# ------------------------------------------------------------------------------------------------
# Mutants the suite used to miss
# ------------------------------------------------------------------------------------------------

def test_per_column_resolution_is_at_least_one_bit():
    """adc_bits='auto' without skipping: an all-zero column still converts, with a 1-bit ADC."""
    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", adc_bits="auto")
    w = np.zeros((4, 20), np.int16)
    w[0, :] = 1                                     # one low digit set; every other column is empty
    x = np.ones((2, 20), np.int16)
    r = simulate_layer(w, x, cfg, 8, 8)
    assert r.resolution_columns[0] == 0             # nothing skipped (skip_empty is off)
    assert r.resolution_columns[1] > 0              # the empty columns: 1 bit (2 levels), never 0
    np.testing.assert_array_equal(r.output, x @ w.T)


@pytest.mark.parametrize("rpc, k", [(100, 300), (7, 130), (50, 256)])
def test_conversion_groups_stop_at_the_array_tile(rpc, k):
    """rows_per_conversion groups never run past the end of an array row tile (the last group of a
    tile is shorter), checked against the numpy reference."""
    import xbar_reference as ref

    rng = np.random.default_rng(rpc)
    cfg = CrossbarConfig.preset("neurosim-1.3", rows_per_conversion=rpc)
    w = rng.integers(-128, 128, size=(3, k))
    x = rng.integers(0, 256, size=(2, k))
    r = simulate_layer(w.astype(np.int16), x.astype(np.int16), cfg, 8, 8, a_signed=False)
    e = ref.simulate(w, x, cfg, 8, 8, False)
    groups = sum(-(-min(128, k - t) // rpc) for t in range(0, k, 128))   # the last group of a tile is shorter
    columns = 3 * 4                              # 3 weights x 4 two-bit digits (the offset is subtracted digitally)
    assert r.conversions == e["conversions"] == 2 * 8 * groups * columns   # vectors x input pulses x groups x columns
    assert r.energy["adc"] == pytest.approx(e["energy"]["adc"], rel=2e-4, abs=0)
    np.testing.assert_allclose(r.output, e["y"], rtol=1e-12, atol=1e-6)


def test_digit_order_puts_the_most_significant_digits_first():
    """column_order='digit': every weight's top digit in the first columns, then the next digit...
    Only the top digit is non-zero here, so with skip_empty whole leading column-mux cycles read
    and the trailing ones are skipped, which the reference (and the wire positions) pin down."""
    import xbar_reference as ref

    cfg = CrossbarConfig.preset("neurosim-1.3", mapping="differential", column_order="digit", skip_empty=True,
                                r_wire_row=100.0, adc_bits="auto")
    w = np.zeros((12, 40), np.int64)
    w[:, ::3] = 64 + 3                              # the top 2-bit digit (bits 6..7) and the lowest one
    w[:6, 1] = 12                                   # the second digit in half the weights
    x = np.random.default_rng(0).integers(0, 256, size=(2, 40))
    r = simulate_layer(w.astype(np.int16), x.astype(np.int16), cfg, 8, 8, a_signed=False)
    e = ref.simulate(w, x, cfg, 8, 8, False)
    for c, v in r.energy.items():
        assert v == pytest.approx(e["energy"][c], rel=2e-4, abs=0), c
    assert r.skipped_cycles == e["skipped_cycles"] and r.read_cycles == e["read_cycles"]
    np.testing.assert_allclose(r.output, e["y"], rtol=1e-12, atol=1e-6)


def test_an_empty_bit_position_is_priced_by_a_positive_probe():
    """No weight uses bits 4..6: their price is what setting them costs (> 0), not 0 (the probe's
    sign flipped would price them 0)."""
    q = np.random.default_rng(3).integers(-15, 16, size=(4, 16))
    model = quantize_model(nn.Sequential(nn.Linear(16, 4, bias=False)), weight_mode="fixed")
    layer = model[0]
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(q / 127.0))
        layer.w_quant.step.fill_(1 / 127.0)         # a fixed grid on which the integers are q
        layer.w_quant.initialized.fill_(True)
    stored, _ = layer.weight_integers()
    assert torch.equal(stored, torch.from_numpy(q)) and int(stored.abs().max()) < 16
    cfg = CrossbarConfig.preset("bitline", mapping="differential", cell_bits=1, r_access=0.0, r_wire_row=0.0,
                                r_wire_col=0.0)
    x = torch.ones(2, 16)
    model(x)
    prices = bit_prices(model, x, cfg)["0"]
    # one ON cell costs V^2 (G_on - G_off) t per driven pulse; the input quantizer maps 1.0 to 255,
    # so every row is driven by all 8 input bit pulses
    expect = 0.5 ** 2 * 10e-9 * (1 / 6e3 - 1 / 900e3) * 8
    np.testing.assert_allclose(prices[:7], expect, rtol=1e-9)   # bits 4..6 by the probe, the same cost
    assert prices[7] == 0.0                         # the differential code has no sign bit


def test_train_device_is_checked():
    from hamqcore.study.train import TrainConfig

    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        TrainConfig(device="tpu").validate()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            TrainConfig(device="cuda:0").validate()
    assert TrainConfig(device="cpu").validate().device == "cpu"


@pytest.mark.parametrize("model", ["resnet18", "ds_cnn"])
def test_training_without_the_deterministic_nan_fill_gives_the_same_bits(tmp_path, monkeypatch, model):
    """train() turns off deterministic mode's NaN fill of new tensors for speed: an op that read memory it
    never wrote would then differ from the same run with the fill forced on (and restores the setting)."""
    from hamqcore.study.train import TrainConfig, train

    kw = dict(width=2, data="digits") if model == "resnet18" else dict(data="spoken_keywords", quick_data=True)
    cfg = TrainConfig(model=model, epochs=2, lam=1.0, warmup_epochs=1, ramp_epochs=0, batch_size=32,
                      train_subset=96, threads=1, **kw)
    before = torch.utils.deterministic.fill_uninitialized_memory
    fast = train(cfg, tmp_path / "fast", progress=False, log=lambda s: None)
    assert torch.utils.deterministic.fill_uninitialized_memory == before
    set_fill = torch._C._set_deterministic_fill_uninitialized_memory
    monkeypatch.setattr(torch._C, "_set_deterministic_fill_uninitialized_memory", lambda mode: set_fill(True))
    filled = train(cfg, tmp_path / "filled", progress=False, log=lambda s: None)
    monkeypatch.undo()
    torch.utils.deterministic.fill_uninitialized_memory = before
    a, b = fast.model.state_dict(), filled.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in fast.history] == [r["loss"] for r in filled.history]


def test_extensions_of_a_preset_are_labelled():
    """What NeuroSim's golden data do not cover is named as hamqcore's extension in every report."""
    plain = CrossbarConfig()
    assert plain.extensions == () and "extensions" not in plain.describe()
    ext = CrossbarConfig.preset("neurosim-1.3", mapping="differential", cell_bits=4, skip_empty=True)
    assert ext.extensions == ("skip_empty=True", "differential mapping")
    # 4-bit cells are golden-tested (the cb4 variant of tests/reference_data/neurosim-1.3)
    assert CrossbarConfig.preset("neurosim-1.3", cell_bits=4).extensions == ()
    assert "[hamqcore extensions, not validated against the simulator: skip_empty=True" in ext.describe()
