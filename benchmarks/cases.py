"""Benchmark cases: each times hamqcore and a reference side by side, in one process, with
interleaved repeats (best of N), and reports the ratio. ``benchmarks/run.py`` (and ``hamq bench``)
prints them; the targets are the issues' speed requirements. The references are what a careful
numpy/torch user would write (lookup tables, BLAS), checked to compute the same numbers first.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

import hamqcore as _api


@dataclass
class Case:
    name: str
    ours: float      # seconds, best of repeats
    reference: float
    reference_name: str
    target: Optional[float] = None  # required reference/ours ratio (speed-up), if any
    note: str = ""                  # what the time means against the hardware's limit, if said

    @property
    def ratio(self) -> float:
        return self.reference / self.ours

    @property
    def meets(self) -> Optional[bool]:
        return None if self.target is None else self.ratio >= self.target


def best_of(fns: List[Callable[[], object]], repeats: int = 7) -> List[float]:
    """Best wall time of each function, repeats interleaved so machine noise hits all alike."""
    best = [float("inf")] * len(fns)
    for fn in fns:  # warm up (page faults, thread pools, caches)
        fn()
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def format_table(cases: List[Case]) -> str:
    head = f"{'case':<44} {'hamqcore':>10} {'reference':>10}  {'ratio':>7}  {'target':>7}  reference"
    lines = [head, "-" * len(head)]
    for c in cases:
        target = "" if c.target is None else f">={c.target:g}x"
        mark = "" if c.meets is None else ("  ok" if c.meets else "  MISS")
        lines.append(
            f"{c.name:<44} {c.ours * 1e3:>8.2f}ms {c.reference * 1e3:>8.2f}ms  {c.ratio:>6.2f}x  {target:>7}"
            f"  {c.reference_name}{mark}"
        )
    notes = [f"  {c.name}: {c.note}" for c in cases if c.note]
    return "\n".join(lines + (["", "against the hardware:"] + notes if notes else []))


def popcount_peak() -> Tuple[float, str]:
    """The AND+POPCNT limit of this machine in binary MACs per second, from the ISA: one 512-bit
    AND + VPOPCNTQ per cycle per core (AVX-512 VPOPCNTDQ; 256 bits per cycle with AVX2's
    shuffle-based popcount, 64 with scalar POPCNT) on each of the simulator's threads, at the clock
    /proc/cpuinfo reports (its first core's "cpu MHz"); with how it was derived."""
    mhz = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    mhz = float(line.split(":")[1])
                    break
    except OSError:
        pass
    bits = {"avx512": 512, "avx2": 256}.get(_api.active_isa(), 64)
    threads = _api.get_num_threads()     # the threads the simulator runs on (one core each)
    if mhz is None:
        return float("nan"), "clock unknown"
    return threads * bits * mhz * 1e6, f"{threads} threads x {bits} bit-ops/cycle x {mhz:.0f} MHz"


def numpy_relaxed_penalty(x: np.ndarray, bits: int, table: np.ndarray):
    """The linear relaxed-HW penalty and gradient, vectorised numpy (the speed reference).

    ``table[k + hi]`` is HW(k) for k in [-hi, hi].
    """
    hi = (1 << (bits - 1)) - 1
    xc = np.clip(x, -hi, hi)
    k = np.minimum(np.floor(xc), hi - 1)
    f = xc - k
    idx = k.astype(np.int64) + hi
    t0, t1 = table[idx], table[idx + 1]
    tm = table[np.maximum(idx - 1, 0)]
    slope = (t1 - t0).astype(x.dtype)
    left = np.where(idx > 0, t0 - tm, 0).astype(x.dtype)
    deriv = np.where(f == 0, 0.5 * (left + slope), slope)
    deriv = np.where(x == hi, 0.5 * slope, deriv)
    deriv = np.where((x < -hi) | (x > hi), 0, deriv).astype(x.dtype)
    value = float(np.sum(t0 + f * slope, dtype=np.float64))
    return value, deriv


def core_cases(quick: bool = False) -> List[Case]:
    """Foundation targets: total HW at memory bandwidth and >= 20x numpy; penalty >= 4x numpy."""
    rng = np.random.default_rng(0)
    n = (8 if quick else 64) << 20
    q = rng.integers(-127, 128, size=n, dtype=np.int8)
    words = q.view(np.uint64)
    repeats = 3 if quick else 7
    t_ours, t_bw, t_np = best_of(
        [
            lambda: _api.total_hamming_weight(q, 8),
            lambda: words.sum(),
            lambda: np.bitwise_count(np.abs(q)).sum(),
        ],
        repeats,
    )
    mib = n >> 20
    cases = [
        Case(f"total_hamming_weight {mib} Mi int8 (bandwidth)", t_ours, t_bw, "a.view(uint64).sum()", 0.8),
        Case(f"total_hamming_weight {mib} Mi int8", t_ours, t_np, "np.bitwise_count(np.abs(q)).sum()", 20),
    ]
    m = (2 if quick else 16) << 20
    x = (rng.standard_normal(m) * 20).astype(np.float32)
    hi = 127
    table = _api.hamming_weight(np.arange(-hi, hi + 1, dtype=np.int16), 8).astype(np.float32)
    t_ours, t_np = best_of(
        [lambda: _api.relaxed_hw_penalty(x, 8), lambda: numpy_relaxed_penalty(x, 8, table)],
        max(2, repeats // 2),
    )
    cases.append(Case(f"relaxed_hw_penalty {m >> 20} Mi float32", t_ours, t_np, "vectorised numpy", 4))
    # the memory-bandwidth bounds of a pass that reads x and writes a gradient of its size: into a
    # preallocated buffer (the bound itself; the penalty writes into one too, out=) and into a fresh
    # array (what any call returning a new gradient pays: the first touch of its pages)
    buf, grad = np.empty_like(x), np.empty_like(x)
    t_into, t_ours, t_rw, t_rw_new = best_of(
        [lambda: _api.relaxed_hw_penalty(x, 8, out=grad), lambda: _api.relaxed_hw_penalty(x, 8),
         lambda: np.multiply(x, np.float32(1.0), out=buf), lambda: np.multiply(x, np.float32(1.0))], max(3, repeats),
    )
    cases.append(Case(f"relaxed_hw_penalty {m >> 20} Mi float32 (bandwidth)", t_into, t_rw,
                      "read x + write into a preallocated array (both)", 0.5))
    cases.append(Case(f"relaxed_hw_penalty {m >> 20} Mi float32 (fresh output)", t_ours, t_rw_new,
                      "read x + write a new array (both)", 0.5))
    # the same pass with its other level costs and relaxation (no target of their own): per-bit prices
    # (the demo's crossbar-priced penalty looks its level costs up in a table) and the cosine relaxation
    w = x.reshape(1024, -1)
    cost = np.linspace(1.0, 2.5, 8)
    t_priced, t_cos, t_rw = best_of(
        [lambda: _api.scaled_hw_penalty(w, 1.0, 8, bit_cost=cost, out=grad.reshape(w.shape)),
         lambda: _api.relaxed_hw_penalty(x, 8, relaxation="cosine", out=grad),
         lambda: np.multiply(x, np.float32(1.0), out=buf)], max(3, repeats),
    )
    cases.append(Case(f"scaled_hw_penalty {m >> 20} Mi float32, per-bit prices (bandwidth)", t_priced, t_rw,
                      "read x + write into a preallocated array (both)"))
    cases.append(Case(f"relaxed_hw_penalty {m >> 20} Mi float32, cosine (bandwidth)", t_cos, t_rw,
                      "read x + write into a preallocated array (both)"))
    return cases


def numpy_neurosim(w: np.ndarray, x: np.ndarray, cfg, w_bits: int = 8, a_bits: int = 8):
    """The ``neurosim-1.3`` sense-amp energy and the functional output the way a careful numpy user
    would compute them: the offset codes' digits as cell conductances (with the access and wire
    resistance of every cell position), 0/1 input planes through float32 BLAS per row tile for the
    column conductances and digit sums, NeuroSim's sense-amp power on the whole array at once.
    Unsigned inputs, 2-bit cells, 128-row tiles, 4 digits of 8-bit weights; the 5-bit sense amp reads
    a digit sum s as step * min(31, round(s / step)), step = 384 / 31."""
    out, k = w.shape
    R, cb, D = cfg.rows, cfg.cell_bits, 4
    code = (w.astype(np.int64) + (1 << (w_bits - 1))).T                        # K x out
    digits = np.stack([(code >> (d * cb)) & 3 for d in range(D - 1, -1, -1)], axis=2).reshape(k, out * D)
    G = cfg.g_off + digits / 3.0 * (cfg.g_on - cfg.g_off)
    xp = np.stack([((x >> p) & 1) for p in range(a_bits)], axis=1).astype(np.float32)   # N x P x K
    n = x.shape[0]
    col_coef = np.tile(2.0 ** (cb * np.arange(D - 1, -1, -1)), out)
    y = np.zeros((n, out))
    e_sa = 0.0
    k_exp = 2.303 / np.log(10.0)
    for t0 in range(0, k, R):
        rows = min(R, k - t0)
        cols = np.arange(out * D) % cfg.cols
        r_series = (1 / G[t0:t0 + rows] + cfg.r_access + (cols + 1) * cfg.r_wire_row
                    + (rows - np.arange(rows))[:, None] * cfg.r_wire_col)
        g_cell = (1 / r_series).astype(np.float32)
        xt = xp[:, :, t0:t0 + rows].reshape(n * a_bits, rows)
        g_col = (xt @ g_cell).astype(np.float64)                                 # conductance per conversion
        s = (xt @ digits[t0:t0 + rows].astype(np.float32)).astype(np.float64)     # digit sums (exact)
        with np.errstate(divide="ignore"):
            p = np.where(g_col > 0, 1.7e-6 * 31 + 0.0631 * (2 * cfg.v_read * g_col) ** k_exp, 1e-6)
        e_sa += float(p.sum()) * 1e-9
        step = R * 3 / 31
        readings = step * np.minimum(31, np.rint(s / step))
        contrib = (readings * col_coef).reshape(n, a_bits, out, D).sum(axis=3)
        y += (contrib * (2.0 ** np.arange(a_bits))[None, :, None]).sum(axis=1)
    y -= (1 << (w_bits - 1)) * x.sum(axis=1, keepdims=True)
    return y, e_sa


def crossbar_cases(quick: bool = False) -> List[Case]:
    """512x512 8-bit layer x 1024 8-bit vectors under ``neurosim-1.3`` vs the numpy/BLAS path
    (>= 10x); the HW-aware periphery options' cost (<= 20 %); the conductance readout through
    calibrated references against ideal digits (<= 20 %)."""
    from hamqcore.crossbar import CrossbarConfig, simulate_layer

    rng = np.random.default_rng(0)
    n = 256 if quick else 1024
    w = rng.integers(-127, 128, size=(512, 512)).astype(np.int8)
    x = rng.integers(0, 256, size=(n, 512)).astype(np.int16)
    cfg = CrossbarConfig.preset("neurosim-1.3")
    ours = simulate_layer(w, x, cfg, 8, 8)
    y, e_sa = numpy_neurosim(w, x, cfg)
    assert np.allclose(ours.output, y, rtol=1e-12, atol=1e-6), "numpy reference disagrees with the simulator"
    assert abs(ours.energy["adc"] - e_sa) <= 1e-5 * e_sa, (ours.energy["adc"], e_sa)
    reps = 2 if quick else 3
    t_ours, t_np = best_of([lambda: simulate_layer(w, x, cfg, 8, 8), lambda: numpy_neurosim(w, x, cfg)], reps)
    macs = 512 * 512 * n * 8 * 8                   # binary MACs: every weight bit with every input bit
    peak, how = popcount_peak()
    note = (f"{macs / t_ours / 1e9:.0f} G binary MAC/s, {ours.conversions / t_ours / 1e6:.0f} M conversions/s; "
            f"AND+POPCNT limit {peak / 1e9:.0f} G/s ({how}); a conversion covers {macs / ours.conversions:.0f} "
            f"binary MACs, so issue #21's 1000 G/s is {1e12 / (macs / ours.conversions) / 1e9:.1f} G conversions/s, "
            "each also summing its conductance and evaluating the sense amp's power law")
    cases = [Case(f"simulate_layer 512x512 w8, {n} x a8 (neurosim-1.3)", t_ours, t_np, "numpy planes + float32 BLAS", 10,
                  note)]
    opts = CrossbarConfig.preset("neurosim-1.3", adc_bits="auto", skip_empty=True, complement=True,
                                 column_order="digit")
    t_plain, t_opts = best_of([lambda: simulate_layer(w, x, cfg, 8, 8, output=False),
                               lambda: simulate_layer(w, x, opts, 8, 8, output=False)], reps)
    cases.append(Case("periphery options on (plain / with options)", t_opts, t_plain, "the same layer, options off",
                      1 / 1.2))
    # what the crossbar reads: the cells' conductances through calibrated references with their gain
    # (issue #19's readout options) against the ideal-digit output of the same layer
    read = CrossbarConfig.preset("neurosim-1.3", readout="conductance", adc_reference="calibrated")
    fs, gain = np.full(4, 150.0), np.full(4, 1.1)     # offset mapping, 8 bits in 2-bit cells: 4 digit columns
    t_digits, t_read = best_of([lambda: simulate_layer(w, x, cfg, 8, 8),
                                lambda: simulate_layer(w, x, read, 8, 8, digit_full_scale=fs, digit_gain=gain)], reps)
    cases.append(Case("conductance readout, calibrated references (ideal digits / it)", t_read, t_digits,
                      "the same layer, ideal digits, full-scale reference", 1 / 1.2))
    # calibration's histograms of the ADC inputs from the kernel's counts, against a dense GEMM per
    # conversion group and pulse (hamqcore.readout's model, what a careful numpy user writes)
    from hamqcore.crossbar import conversion_histograms
    from hamqcore.readout import HIST_BINS_PER_UNIT, Histograms, read_layer

    cal = CrossbarConfig.preset("neurosim-1.3", mapping="differential", readout="conductance",
                                adc_reference="calibrated", skip_empty=True)
    wd = rng.integers(-127, 128, size=(512, 512)).astype(np.int8)
    xc = x[: 64 if quick else 128]

    def dense():
        h = Histograms()
        read_layer(wd, xc, cal, 8, 8, False, histograms=h)
        return h

    h_ref, (counts, _, _) = dense(), conversion_histograms(wd, xc, cal, 8, 8, False, HIST_BINS_PER_UNIT)
    assert all(int(counts[k].sum()) == int(h_ref.counts[k].sum()) for k in h_ref.counts), "the histograms disagree"
    t_hist, t_dense = best_of([lambda: conversion_histograms(wd, xc, cal, 8, 8, False, HIST_BINS_PER_UNIT), dense],
                              reps)
    cases.append(Case(f"calibration histograms 512x512 w8, {len(xc)} x a8", t_hist, t_dense,
                      "dense float64 GEMM per group and pulse + bincount", 3))
    return cases


def grid_cases(quick: bool = False) -> List[Case]:
    """ResNet-18's (CIFAR, width 64) weights onto the 8-bit grid, every layer, against torch's
    round(w / max_step).clamp as int16 (>= 3x); the same integers."""
    import torch

    from hamqcore.kernels import quantize_rows
    from hamqcore.study.models import resnet18

    torch.manual_seed(0)
    ws = [m.weight.detach().reshape(m.weight.shape[0], -1) for m in resnet18(width=16 if quick else 64).modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]

    def ours():
        return [quantize_rows(w.numpy(), 8)[0] for w in ws]

    def ref():
        out = []
        for w in ws:
            s = w.abs().amax(dim=1, keepdim=True)
            s = torch.where(s > 0, s / 127, torch.ones_like(s))
            out.append(torch.round(w / s).clamp_(-127, 127).to(torch.int16))
        return out

    assert all(np.array_equal(a, b.numpy()) for a, b in zip(ours(), ref())), "torch rounds differently"
    t_ours, t_ref = best_of([ours, ref], 3 if quick else 5)
    n = sum(int(w.numel()) for w in ws)
    return [Case(f"weights onto the 8-bit grid, ResNet-18 ({n / 1e6:.1f} M)", t_ours, t_ref,
                 "torch abs-amax, div, round, clamp, int16", 3)] + activation_cases(quick)


def activation_cases(quick: bool = False) -> List[Case]:
    """Activation fake quantization (QAT's forward and its straight-through backward) on DS-CNN-S's
    largest activation (batch 64 x 64 channels x 25 x 5, 6-bit unsigned) against torch's formula
    through autograd (the same bits, >= 3x) and torch's own fused fake_quantize_per_tensor_affine
    (which multiplies by 1/scale: other bits); and a DS-CNN-S training step, one thread, with the
    quantizers fused against the same step through torch's formula (the same bits)."""
    import torch

    from hamqcore import ops
    from hamqcore.quant import ActQuantizer, activation_range, round_ste
    from hamqcore.study.models import ds_cnn

    torch.manual_seed(0)
    x = torch.randn(16 if quick else 64, 64, 25, 5).relu_()
    g = torch.randn_like(x)
    s = torch.tensor(float(x.max()) / 63)

    def fwd_bwd(f):
        def run():
            xr = x.detach().requires_grad_()
            f(xr).backward(g)
            return xr.grad
        return run

    ours = fwd_bwd(lambda t: ops.fake_quantize(t, float(s), 0, 63))
    formula = fwd_bwd(lambda t: torch.clamp(round_ste(t / s), 0, 63) * s)
    fused = fwd_bwd(lambda t: torch.fake_quantize_per_tensor_affine(t, float(s), 0, 0, 63))
    assert torch.equal(ours(), formula()), "the fused op and torch's formula differ"
    reps = 5 if quick else 15
    t_ours, t_formula, t_fused = best_of([ours, formula, fused], reps)
    cases = [Case("activation fake quant fwd+bwd, 6-bit, 0.5 M" if not quick else "activation fake quant fwd+bwd",
                  t_ours, t_formula, "torch's formula through autograd (same bits)", 3),
             Case("  the same against torch's fused op", t_ours, t_fused, "torch.fake_quantize_per_tensor_affine", 1)]

    def formula_forward(self, t):   # ActQuantizer.forward through torch's formula
        if self.training or not bool(self.initialized):
            self._observe(t)
        lo, hi, _ = activation_range(self.bits, bool(int(self.signed_flag)))
        st = self.scale(t)
        return torch.clamp(round_ste(t / st), lo, hi) * st

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ds_cnn("S", 12, quantize=(6, 6))
        opt = torch.optim.SGD(model.parameters(), 1e-3)
        xb, yb = torch.randn(64, 1, 49, 10), torch.randint(0, 12, (64,))

        def step():
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

        fused_forward = ActQuantizer.forward

        def step_formula():
            ActQuantizer.forward = formula_forward
            try:
                step()
            finally:
                ActQuantizer.forward = fused_forward

        t_step, t_step_formula = best_of([step, step_formula], 3 if quick else 7)
    finally:
        torch.set_num_threads(threads)
    cases.append(Case("DS-CNN-S train step, batch 64, 1 thread", t_step, t_step_formula,
                      "the step with torch's formula (same bits)", 1.2))
    return cases


def resnet18_energy_time(repeats: int = 3) -> Tuple[float, float]:
    """Best wall times of a full CIFAR ResNet-18 energy estimate (neurosim-1.3) at 8b/8b for one image
    (target <= 0.35 s on 2 cores), at subarray and at chip scope (the chip's part: no measurable cost)."""
    import torch

    from hamqcore.energy import estimate_energy
    from hamqcore.study.models import resnet18

    torch.manual_seed(0)
    model = resnet18().eval()
    x = torch.rand(1, 3, 32, 32)
    t, t_chip = best_of([lambda: estimate_energy(model, x), lambda: estimate_energy(model, x, scope="chip")], repeats)
    return t, t_chip


def training_fns(model, x, y, reg, opt):
    """(step(with_reg=True), reg_only): one optimizer step of ``model`` on (x, y), cross-entropy plus
    (with_reg) the regularizer ``reg``; and the regularizer's forward and backward alone."""
    import torch

    def step(with_reg: bool = True):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if with_reg:
            loss = loss + reg()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def reg_only():
        for p in model.parameters():
            p.grad = None
        reg().backward()

    return step, reg_only


def regularizer_cases(quick: bool = False) -> List[Case]:
    """The op vs the pure-torch path on 10 M weights (>= 4x); the regularizer's share of a
    ResNet-18 (CIFAR) training step, batch 32 (<= 5 %), reported as step time without / with."""
    import torch

    from hamqcore import ops
    from hamqcore.study.models import resnet18
    from hamqcore.nn import HamQRegularizer

    torch.manual_seed(0)
    m = (1 if quick else 10) * 1_000_000
    w = (torch.randn(m) * 30).requires_grad_()

    def op():
        w.grad = None
        ops.relaxed_hw_penalty(w, 8).backward()

    def pure():
        w.grad = None
        v, _ = ops.torch_relaxed_hw(w, 8)
        v.sum().backward()

    t_op, t_pure = best_of([op, pure], 3 if quick else 5)
    cases = [Case(f"relaxed_hw_penalty op fwd+bwd, {m // 1_000_000} M weights", t_op, t_pure, "pure-torch path", 4)]

    model = resnet18(width=16 if quick else 64)
    batch = 8 if quick else 32
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    reg = HamQRegularizer(model, bits=8, lam=0.1, example_input=x[:1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    step, reg_only = training_fns(model, x, y, reg, opt)
    t_plain, t_reg, t_alone = best_of([lambda: step(False), lambda: step(True), reg_only], 3 if quick else 7)
    # The target (HamQ <= 5 % of a step) is read from HamQ's own fwd+bwd against the step: the
    # difference of two step timings is noisier than the share itself, so it is shown without a target.
    cases.append(Case(f"ResNet-18 train step b{batch}: plain / +HamQ", t_reg, t_plain, "step without regularizer"))
    cases.append(Case(f"ResNet-18 step b{batch} / HamQ fwd+bwd alone", t_alone, t_plain, "step without regularizer", 20))
    return cases + demo_share_cases(quick)


def demo_share_cases(quick: bool = False) -> List[Case]:
    """HamQ's share of a training step of the demo's DS-CNN-S (6-bit QAT, batch 64, one thread as the
    demo trains; the paper's penalty, weighting="params"): its own fwd+bwd against the step (<= 5 %)."""
    import torch

    import hamqcore
    from hamqcore.nn import HamQRegularizer
    from hamqcore.study.models import ds_cnn

    threads, hthreads = torch.get_num_threads(), hamqcore.get_num_threads()
    torch.set_num_threads(1)
    hamqcore.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = ds_cnn("S", 12, quantize=(6, 6))
        batch = 16 if quick else 64
        x, y = torch.randn(batch, 1, 49, 10), torch.randint(0, 12, (batch,))
        reg = HamQRegularizer(model, bits=6, lam=1.0, weighting="params")
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        step, reg_only = training_fns(model, x, y, reg, opt)
        t_step, t_alone = best_of([step, reg_only], 3 if quick else 7)
    finally:
        torch.set_num_threads(threads)
        hamqcore.set_num_threads(hthreads)
    return [Case(f"DS-CNN-S step b{batch}, 1 thread / HamQ alone", t_alone, t_step, "the step with HamQ", 20)]


def numpy_gptq_round(w: np.ndarray, h: np.ndarray, s: np.ndarray, rw: np.ndarray, bits: int, lam: float,
                     radius: int, damp: float, cost: np.ndarray) -> np.ndarray:
    """The same greedy pass written the way a careful numpy user would (GPTQ's recipe: LAPACK for the
    factorisation, every row of the layer at once, vectorised candidate costs and error feedback)."""
    k = h.shape[0]
    hi = (1 << (bits - 1)) - 1
    hd = h.copy()
    dead = np.diag(hd) == 0
    hd[dead, :] = 0
    hd[:, dead] = 0
    hd[dead, dead] = 1
    hd[np.diag_indices(k)] += damp * np.diag(hd).mean()
    u = np.linalg.cholesky(np.linalg.inv(hd)).T
    x = w / s[:, None]
    q = np.zeros(w.shape, np.int64)
    offs = np.arange(-radius, radius + 1)
    rs2 = rw * s * s
    for i in range(k):
        xi = x[:, i]
        n = np.clip(np.rint(xi), -hi, hi)
        cand = np.clip(n[:, None] + offs[None, :], -hi, hi)
        f = (xi[:, None] - cand) ** 2 * (rs2 / (u[i, i] ** 2))[:, None] + lam * cost[(cand + hi).astype(np.int64)]
        best = cand[np.arange(len(xi)), f.argmin(1)]
        q[:, i] = best
        x[:, i + 1:] -= ((xi - best) / u[i, i])[:, None] * u[i, i + 1:][None, :]
    return q


def rounding_cases(quick: bool = False) -> List[Case]:
    """HW-aware rounding of one ResNet-18 layer (K = 1152 inputs, 128 outputs: layer4 at width 16)
    against the vectorised numpy/LAPACK version of the same pass (>= 3x); their objectives agree."""
    from hamqcore import _core, kernels

    rng = np.random.default_rng(0)
    k, rows = (576, 64) if quick else (1152, 128)
    xcal = rng.normal(size=(4 * k, k)).astype(np.float64)
    h = xcal.T @ xcal
    w = rng.normal(size=(rows, k))
    s = np.abs(w).max(1) / 127
    rw = np.full(rows, w.size / float(np.einsum("ok,kl,ol->", w, h, w)))
    cost = kernels.level_cost(np.ones(8), 8)
    ours = lambda: _core.hw_aware_round(w, h, s, rw, 8, "differential", 0.01, 4, 0.01)[0]  # noqa: E731
    ref = lambda: numpy_gptq_round(w, h, s, rw, 8, 0.01, 4, 0.01, cost)  # noqa: E731
    q1, q2 = ours(), ref()
    assert np.mean(q1 != q2) < 1e-3, "the reference computes a different rounding"
    t_ours, t_ref = best_of([ours, ref], 2 if quick else 3)
    return [Case(f"hw_aware_round K={k}, {rows} rows, radius 4", t_ours, t_ref, "numpy + LAPACK GPTQ pass", 3)]
