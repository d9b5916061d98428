"""Regression tests for the defects an adversarial probe found (issue 14): each reproduces the probe's
input and asserts a clear error or a correct result instead of a crash, a hang or a wrong answer."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hamqcore
from hamqcore import kernels


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_histogram_of_out_of_range_values_with_many_one_bits(isa, dtype):
    """A value with more than 16 one-bits used to index past the 17-slot histogram (heap overflow);
    now the range check names the first bad value (every ISA tier: the `isa` fixture)."""
    q = np.full(100_000, np.iinfo(dtype).max, dtype)
    q[0] = 0
    for n in (1, 2):
        with pytest.raises(ValueError, match=r"q\[1\] = \d+ is outside the range \[-127, 127\]"):
            hamqcore.hw_histogram(q, 8, n_threads=n)
    q[:] = -1
    q[5] = np.iinfo(dtype).min
    with pytest.raises(ValueError, match=r"q\[5\] = -\d+ is outside the range"):
        hamqcore.hw_histogram(q, 8)


def test_thread_counts_are_bounded():
    top = kernels.max_threads()
    assert top == 4 * kernels.hardware_threads()
    q = np.zeros(10, np.int8)
    assert hamqcore.total_hamming_weight(q, 8, n_threads=top) == 0      # the bound itself is allowed
    for bad in (top + 1, 50_000, 2 ** 31, 10 ** 30, 0, -kernels.hardware_threads() - 1):
        with pytest.raises(ValueError, match=rf"n_threads must be a thread count in 1..{top} .* got {bad}"):
            hamqcore.total_hamming_weight(q, 8, n_threads=bad)
    with pytest.raises(ValueError, match=rf"n must be a thread count in 1..{top}"):
        hamqcore.set_num_threads(10 ** 9)
    assert hamqcore.total_hamming_weight(q, 8) == 0                     # later calls unaffected
    from hamqcore import _core
    with pytest.raises(ValueError, match="n_threads must be a thread count"):
        _core.total_hamming_weight(q, 8, "differential", top + 1)       # the binding checks too


def test_huge_scalar_arguments_name_the_argument():
    q = np.zeros(4, np.int8)
    with pytest.raises(ValueError, match=r"bits must be an integer in 2..16, got 1099511627776"):
        hamqcore.hamming_weight(q, 2 ** 40)
    with pytest.raises(ValueError, match="cell_bits is out of range, got 4294967296"):
        hamqcore.pack_bitplanes(q, 8, cell_bits=2 ** 32)
    with pytest.raises(ValueError, match=r"length must be in 0..2\^62-1, got -1"):
        hamqcore.unpack_bitplanes(np.zeros((2, 1, 1), np.uint64), -1, 8)


def test_unpack_takes_a_64_bit_length():
    # the length argument is int64 in the binding: a length past 2^31 reaches the shape check
    planes = np.zeros((2, 7, 1), np.uint64)
    with pytest.raises(ValueError, match="planes has shape"):
        hamqcore.unpack_bitplanes(planes, 2 ** 31 + 5, 8)
    with pytest.raises(ValueError, match="planes has shape"):
        hamqcore.unpack_bitplanes(planes, 2 ** 62 - 1, 8)               # the largest length passed on
    for bad, err, message in ((2 ** 62, ValueError, r"length must be in 0..2\^62-1, got 4611686018427387904"),
                              (-1, ValueError, r"length must be in 0..2\^62-1, got -1"),
                              ("7", TypeError, "length must be an integer, got '7'")):
        with pytest.raises(err, match=message):
            hamqcore.unpack_bitplanes(planes, bad, 8)
    assert hamqcore.unpack_bitplanes(np.zeros((2, 7, 0), np.uint64), 0, 8).shape == (0,)


FORK_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import hamqcore
    q = np.random.default_rng(0).integers(-100, 100, size=2_000_000).astype(np.int16)
    parent = hamqcore.total_hamming_weight(q, 8, n_threads=2)      # starts the OpenMP pool
    pid = os.fork()
    if pid == 0:
        ok = hamqcore.total_hamming_weight(q, 8, n_threads=2) == parent and hamqcore.get_num_threads() == 1
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, status

    import torch
    from torch.utils.data import DataLoader, Dataset

    class HW(Dataset):
        def __len__(self):
            return 8
        def __getitem__(self, i):
            return hamqcore.total_hamming_weight(q[i::8], 8, n_threads=2)

    values = [int(v) for batch in DataLoader(HW(), batch_size=2, num_workers=2) for v in batch]
    assert sum(values) == parent, (sum(values), parent)
    print("fork ok")
""")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_forked_children_and_dataloader_workers_do_not_hang():
    """libgomp's pool does not survive fork(): children run every kernel on one thread instead of
    waiting forever (os.fork and DataLoader workers with the fork start method)."""
    # run in the folder holding the hamqcore under test (a checkout's root holds the unbuilt sources)
    proc = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          cwd=Path(hamqcore.__file__).resolve().parents[1])
    assert proc.returncode == 0 and "fork ok" in proc.stdout, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# Tests aimed at the mutants an audit found surviving (each fails on the mutated code).
# ------------------------------------------------------------------------------------------------


def test_adc_saturates_at_its_top_level():
    """A 2-bit ADC (L = 4 levels, step 1) reading a column sum of 10 reads L - 1 = 3, not 4 or 10."""
    from hamqcore.crossbar import CrossbarConfig, simulate_layer

    cfg = CrossbarConfig.preset("mnsim-2.0", mapping="differential", cell_bits=1, adc_bits=2, adc_full_scale=3)
    w = np.ones((2, 10), np.int8)                      # 2-bit weights +1: one ON cell each, positive array
    x = np.ones((1, 10), np.int8)                      # 1-bit inputs, all rows driven
    r = simulate_layer(w, x, cfg, w_bits=2, a_bits=1)
    np.testing.assert_array_equal(r.output, [[3.0, 3.0]])
    exact = CrossbarConfig.preset("mnsim-2.0", mapping="differential", cell_bits=1, adc_bits=4, adc_full_scale=15)
    np.testing.assert_array_equal(simulate_layer(w, x, exact, w_bits=2, a_bits=1).output, [[10.0, 10.0]])


def test_negative_thread_counts_reach_all_processors():
    hw = kernels.hardware_threads()
    q = np.zeros(10, np.int8)
    assert hamqcore.total_hamming_weight(q, 8, n_threads=-hw) == 0     # -hw = one thread: allowed


def test_pure_torch_penalty_paths_match_the_kernel():
    """The pure-torch op (other devices) run on CPU: 'mean' divides by the element count, not rows."""
    import torch

    from hamqcore import ops

    x = torch.randn(7, 9, dtype=torch.float64) * 20
    for red in ("sum", "mean"):
        cpu = ops._penalty_cpu(x, 8, "differential", red)
        pure = ops._penalty_op._init_fn(x, 8, "differential", red)
        torch.testing.assert_close(cpu[0], pure[0], rtol=1e-12, atol=0)
        torch.testing.assert_close(cpu[1], pure[1], rtol=1e-12, atol=0)
    assert float(ops._penalty_op._init_fn(x, 8, "differential", "mean")[0]) * 63 == pytest.approx(
        float(ops._penalty_op._init_fn(x, 8, "differential", "sum")[0]), rel=1e-6, abs=0)


def test_reads_per_weight_is_per_inference_for_any_batch():
    import torch
    import torch.nn as nn

    from hamqcore.nn import reads_per_weight
    from hamqcore.layers import quantizable_layers

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    layers = quantizable_layers(model)
    one = reads_per_weight(model, layers, torch.zeros(1, 1, 6, 6))
    four = reads_per_weight(model, layers, torch.zeros(4, 1, 6, 6))
    assert one == four == {"0": 16.0, "2": 1.0}


def test_grouped_conv_energy_adds_its_groups():
    """group_packing="per_group": a grouped conv's groups sit on separate arrays: ON cells, cells and
    energy are sums over the groups (each simulated alone), and the outputs sit side by side (the
    default block-diagonal packing: tests/test_crossbar_forward.py)."""
    import torch
    import torch.nn as nn

    from hamqcore.crossbar import CrossbarConfig
    from hamqcore.energy import estimate_energy

    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, groups=2, padding=1, bias=False)
    x = torch.rand(2, 4, 5, 5)
    cfg = CrossbarConfig.preset("bitline", mapping="differential", group_packing="per_group")
    whole = estimate_energy(nn.Sequential(conv), x, cfg).layers[0]
    parts = []
    for g in range(2):
        part = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        with torch.no_grad():
            part.weight.copy_(conv.weight[2 * g:2 * g + 2])
        # per-tensor activation scale of the whole input, as the grouped layer sees it
        xs = x[:, 2 * g:2 * g + 2].clone()
        xs[0, 0, 0, 0] = x.abs().max()
        parts.append(estimate_energy(nn.Sequential(part), xs, cfg).layers[0])
    assert whole.on_cells == sum(p.on_cells for p in parts) and whole.cells == sum(p.cells for p in parts)
    assert whole.arrays == sum(p.arrays for p in parts)


_KERNEL_CALLS = {
    "hamming_weight": (lambda **k: kernels.hamming_weight(np.arange(-3, 4, dtype=np.int8), **k), {}),
    "total_hamming_weight": (lambda **k: kernels.total_hamming_weight(np.arange(-3, 4, dtype=np.int8), **k), {}),
    "hw_histogram": (lambda **k: kernels.hw_histogram(np.arange(-3, 4, dtype=np.int8), **k), {}),
    "pack_bitplanes": (lambda **k: kernels.pack_bitplanes(np.arange(-3, 4, dtype=np.int8).reshape(7, 1), **k),
                       {"cell_bits": 1}),
    "unpack_bitplanes": (lambda **k: kernels.unpack_bitplanes(
        kernels.pack_bitplanes(np.arange(-3, 4, dtype=np.int8).reshape(7, 1), 8, cell_bits=1), 7, **k), {"cell_bits": 1}),
    "relaxed_hw": (lambda **k: kernels.relaxed_hw(np.linspace(-5, 5, 11), **k), {"relaxation": "linear"}),
    "relaxed_hw_penalty": (lambda **k: kernels.relaxed_hw_penalty(np.linspace(-5, 5, 11), **k),
                           {"relaxation": "linear", "reduction": "sum"}),
    "scaled_hw_penalty": (lambda **k: kernels.scaled_hw_penalty(np.linspace(-5, 5, 12).reshape(3, 4), 0.5, **k),
                          {"relaxation": "linear", "reduction": "sum"}),
}
# per argument: (bad value, the start of the message), a wrong value and a wrong type
_BAD = {"bits": [(17, "bits must be an integer in 2..16, got 17"), ("8", "bits must be an integer, got '8'"),
                 (2 ** 40, "bits must be an integer in 2..16")],
        "encoding": [("gray", "encoding"), (5, "encoding must be a string, got 5")],
        "relaxation": [("cubic", "relaxation"), (5, "relaxation must be a string, got 5")],
        "reduction": [("max", "reduction"), (5, "reduction must be a string, got 5")],
        "cell_bits": [(2 ** 32, "cell_bits is out of range"), ("1", "cell_bits must be an integer, got '1'")],
        "n_threads": [(10 ** 6, "n_threads must be a thread count"), ("2", "n_threads must be")]}


@pytest.mark.parametrize("name", sorted(_KERNEL_CALLS))
def test_every_kernel_argument_is_checked_and_named(name):
    # Each public kernel forwards every argument through its validator: a bad value of any one of them
    # raises an error naming that argument (and a good call with 1 or 2 threads gives the same result).
    call, extra = _KERNEL_CALLS[name]
    good = {"bits": 8, "encoding": "differential", "n_threads": 1, **extra}
    one, two = call(**good), call(**{**good, "n_threads": 2})
    for a, b in zip(one if isinstance(one, tuple) else (one,), two if isinstance(two, tuple) else (two,)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for arg in good:
        for value, message in _BAD[arg]:
            with pytest.raises((TypeError, ValueError), match=message) as info:
                call(**{**good, arg: value})
            assert str(info.value).startswith(arg), (arg, value, str(info.value))


def test_drawn_cells_are_checked_by_the_core():
    """The energy path's drawn cells (hamqcore.crossbar.cell_draws) reach the C++ core checked: all
    three or none, (digit columns, K) each, factors finite and >= 0, states rows of state_digits,
    state_digits (states, 2^cell_bits) levels in [0, dmax], energy=True; a key is a string."""
    from hamqcore.crossbar import CrossbarConfig, _simulator, cell_draws, simulate_layer

    cfg = CrossbarConfig.preset("neurosim-1.3", stuck_on=0.1)
    w, x = np.zeros((3, 5), np.int8), np.ones((2, 5), np.int8)
    f, u, lv = cell_draws(cfg, 4 * 3, 5)      # 8-bit weights in 2-bit cells: 4 digits; (columns, K)
    sim = _simulator(cfg)

    def run(**kw):
        args = dict(cell_factor=f, cell_state=u, state_digits=lv, output=False)
        args.update(kw)
        return sim.simulate(w, x, 8, 8, **args)

    assert run().conversions > 0
    bad_f, bad_u, bad_lv = f.copy(), u.copy(), lv.copy()
    bad_f[1, 2], bad_u[0, 4], bad_lv[2, 1] = np.nan, 5, 3.5
    for kw, err, match in ((dict(cell_state=None), ValueError, "come together.*got only cell_factor state_digits"),
                           (dict(state_digits=None), ValueError, "come together"),
                           (dict(cell_factor=f[:, :4]), ValueError, r"cell_factor must have shape \(digit columns, K\) = \(12, 5\)"),
                           (dict(cell_state=u[:-1]), ValueError, "cell_state must have shape"),
                           (dict(cell_factor=-f), ValueError, r"cell_factor\[0, 0\] = -1.0+ must be finite and >= 0"),
                           (dict(cell_factor=bad_f), ValueError, r"cell_factor\[1, 2\] = nan"),
                           (dict(cell_state=bad_u), ValueError, r"cell_state\[0, 4\] = 5 must index a row of state_digits \(< 5\)"),
                           (dict(cell_state=u.astype(np.int64)), TypeError, "cell_state must be a uint8 array"),
                           (dict(cell_factor=f.astype(np.int64)), TypeError, "cell_factor must be a float"),
                           (dict(state_digits=lv[:, :3]), ValueError, r"state_digits must have shape \(states, 2\^cell_bits\)"),
                           (dict(state_digits=np.zeros((0, 4))), ValueError, "with 1 to 255 states"),
                           (dict(state_digits=bad_lv), ValueError, r"state_digits\[2, 1\] = 3.5.* must be a level in \[0, 3\]"),
                           (dict(state_digits=-lv), ValueError, r"state_digits\[0, 1\] = -1.0+ must be a level"),
                           (dict(output=True, energy=False), ValueError, "they need energy=True")):
        with pytest.raises(err, match=match):
            run(**kw)
    with pytest.raises(ValueError, match=r"levels\[1\] = 4.0+ must be a level in \[0, 3\]"):
        sim.digit_conductance([0.0, 4.0])
    with pytest.raises(TypeError, match="key must be a string, got 3"):
        simulate_layer(w, x, cfg, 8, 8, output=False, key=3)
