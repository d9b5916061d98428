import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hamqcore
from reference import ENCODINGS, code, hw_array, relaxed_array
from strategies import layouts


@st.composite
def real_weights(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bits = draw(st.integers(2, 16))
    hi = (1 << (bits - 1)) - 1
    # integers, half-integers, arbitrary reals and values beyond the clamp
    element = st.one_of(
        st.integers(-hi - 3, hi + 3).map(float),
        st.integers(-2 * hi - 2, 2 * hi + 2).map(lambda v: v / 2),
        st.floats(-hi - 5.0, hi + 5.0, width=32),
    )
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=8))
    x = draw(hnp.arrays(dtype, shape, elements=element))
    return draw(layouts(x)), bits


@given(data=real_weights(), encoding=st.sampled_from(ENCODINGS), relaxation=st.sampled_from(["linear", "cosine"]))
def test_matches_reference(isa, data, encoding, relaxation):
    x, bits = data
    values, derivs = hamqcore.relaxed_hw(x, bits, encoding, relaxation)
    assert values.dtype == x.dtype and derivs.dtype == x.dtype
    assert values.shape == x.shape and derivs.shape == x.shape
    ev, ed = relaxed_array(x, bits, encoding, relaxation)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(values, ev, rtol=tol, atol=tol * (bits + 1))
    np.testing.assert_allclose(derivs, ed, rtol=tol, atol=tol * (bits + 1))
    for reduction in ("sum", "mean"):
        value, grad = hamqcore.relaxed_hw_penalty(x, bits, encoding, reduction, relaxation)
        scale = 1.0 / x.size if reduction == "mean" and x.size else 1.0
        if x.size:
            assert value == pytest.approx(float(ev.sum()) * scale, rel=1e-6, abs=1e-9)
        assert grad.dtype == x.dtype and grad.shape == x.shape
        np.testing.assert_allclose(grad, ed * scale, rtol=tol, atol=tol * (bits + 1))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", [2, 4, 8, 9, 12, 16])  # 8 and 9: either side of the packed count's limit
def test_equals_hw_at_integers(isa, encoding, bits):
    hi = (1 << (bits - 1)) - 1
    k = np.arange(-hi, hi + 1)
    for relaxation in ("linear", "cosine"):
        values, _ = hamqcore.relaxed_hw(k.astype(np.float64), bits, encoding, relaxation)
        np.testing.assert_array_equal(values, hw_array(k, bits, encoding).astype(np.float64))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("relaxation", ["linear", "cosine"])
def test_derivative_matches_finite_difference(encoding, relaxation):
    rng = np.random.default_rng(3)
    x = rng.uniform(-126.5, 126.5, 2000)
    x = x[np.abs(x - np.round(x)) > 1e-3]  # off the integers (kinks of the linear relaxation)
    h = 1e-6
    plus, _ = hamqcore.relaxed_hw(x + h, 8, encoding, relaxation)
    minus, _ = hamqcore.relaxed_hw(x - h, 8, encoding, relaxation)
    _, d = hamqcore.relaxed_hw(x, 8, encoding, relaxation)
    np.testing.assert_allclose(d, (plus - minus) / (2 * h), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_cosine_relaxation_keeps_its_precision_near_every_level(isa, dtype, encoding):
    """h(k) + (h(k+1) - h(k)) (1 - cos(pi f)) / 2 within an ulp of its exact value (mpmath, 60 digits;
    float64, whose terms are in its own precision: 4) at fractions f from 2^-(mantissa) to 1/2 either
    side of a level, where 1 minus a cosine near 1 would lose the small term's precision (in float32,
    1.5e-6 of the value at f = 1/16, all of it below f = 1e-4); the derivative within a few ulps of
    (h(k+1) - h(k)) pi/2 sin(pi f)."""
    import mpmath

    from reference import hw

    mpmath.mp.dps = 60
    bits, hi = 4, 7
    digits = np.finfo(dtype).nmant
    fracs = [2.0 ** -j for j in range(1, digits + 1)] + [0.1, 0.0625 * 3, 1e-3, 1e-5]
    xs = sorted({float(dtype(k + s * f)) for k in range(-hi, hi) for f in fracs for s in (1, -1)
                 if -hi < k + s * f < hi})
    x = np.array(xs, dtype=dtype)
    values, derivs = hamqcore.relaxed_hw(x, bits, encoding, "cosine")
    ulp = np.spacing(np.abs(values).astype(dtype))
    ulps = 1.01 if dtype == np.float32 else 4   # float32: its terms in double, rounded once or twice
    for xi, v, d, u in zip(xs, values, derivs, ulp):
        k = int(np.floor(xi))
        f = mpmath.mpf(xi) - k
        t0, t1 = hw(k, bits, encoding), hw(k + 1, bits, encoding)
        exact_v = t0 + (t1 - t0) * (1 - mpmath.cos(mpmath.pi * f)) / 2
        exact_d = (t1 - t0) * mpmath.pi / 2 * mpmath.sin(mpmath.pi * f)
        assert abs(float(v) - exact_v) <= ulps * float(u) + float(np.finfo(dtype).tiny), (xi, float(v), float(exact_v))
        assert abs(float(d) - exact_d) <= 4 * float(np.spacing(dtype(abs(float(exact_d))))) + 1e-300, (xi, d)


def test_clamped_outside_the_range():
    values, derivs = hamqcore.relaxed_hw(np.array([-1e30, -200.0, 127.5, 1e30]), 8)
    np.testing.assert_array_equal(values, [7, 7, 7, 7])
    np.testing.assert_array_equal(derivs, [0, 0, 0, 0])
    _, d = hamqcore.relaxed_hw(np.array([127.0, -127.0]), 8)  # at the bounds: half the inner slope
    np.testing.assert_array_equal(d, [0.5, -0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("relaxation", ["linear", "cosine"])
def test_penalty_is_bitwise_identical_for_any_threads_and_tier(dtype, encoding, relaxation):
    from hamqcore import _core

    x = np.random.default_rng(11).normal(0, 30, 300_001).astype(dtype)
    results = []
    try:
        for isa in hamqcore.available_isas():
            _core.set_isa(isa)
            for nt in (1, 2, 3):
                results.append(hamqcore.relaxed_hw_penalty(x, 8, encoding, "mean", relaxation, n_threads=nt))
    finally:
        _core.set_isa(hamqcore.available_isas()[0])
    value0, grad0 = results[0]
    for value, grad in results[1:]:
        assert value == value0
        np.testing.assert_array_equal(grad, grad0)
    ev, _ = relaxed_array(x[:5000], 8, encoding, relaxation)
    v5000, _ = hamqcore.relaxed_hw_penalty(x[:5000], 8, encoding, relaxation=relaxation)
    assert v5000 == pytest.approx(ev.sum(), rel=1e-9, abs=0)


def test_empty_and_zero_d():
    value, grad = hamqcore.relaxed_hw_penalty(np.zeros(0, np.float32), 8)
    assert value == 0.0 and grad.shape == (0,)
    value, grad = hamqcore.relaxed_hw_penalty(np.zeros(0), 8, reduction="mean")
    assert np.isnan(value)
    v, d = hamqcore.relaxed_hw(np.float64(2.5), 8)
    assert v.shape == () and float(v) == 1.5 and float(d) == 1.0


def test_errors():
    with pytest.raises(ValueError, match=r"x\[1, 0\] = nan is not finite"):
        hamqcore.relaxed_hw(np.array([[0.0], [np.nan]]), 8)
    with pytest.raises(ValueError, match=r"x\[2\] = -inf is not finite"):
        hamqcore.relaxed_hw_penalty(np.array([0, 1, -np.inf], np.float32), 8)
    big = np.zeros(100_000, np.float32)
    big[77_777] = np.inf
    with pytest.raises(ValueError, match=r"x\[77777\] = inf"):
        hamqcore.relaxed_hw_penalty(big, 8, n_threads=2)
    with pytest.raises(TypeError, match="x must be a float32 or float64 array, got dtype float16"):
        hamqcore.relaxed_hw(np.zeros(2, np.float16), 8)
    with pytest.raises(TypeError, match="got dtype int64"):
        hamqcore.relaxed_hw_penalty(np.zeros(2, np.int64), 8)
    with pytest.raises(ValueError, match="reduction must be one of 'sum', 'mean', got 'max'"):
        hamqcore.relaxed_hw_penalty(np.zeros(2), 8, reduction="max")
    with pytest.raises(ValueError, match="relaxation must be one of 'linear', 'cosine', got 'cubic'"):
        hamqcore.relaxed_hw(np.zeros(2), 8, relaxation="cubic")
    with pytest.raises(ValueError, match="bits must be an integer in 2..16, got 1"):
        hamqcore.relaxed_hw(np.zeros(2), 1)
    with pytest.raises(ValueError, match="encoding must be one of"):
        hamqcore.relaxed_hw_penalty(np.zeros(2), 8, encoding="gray")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_scaled_penalty_matches_unfused_reference(dtype, encoding):
    rng = np.random.default_rng(5)
    w = (rng.normal(0, 0.05, size=(7, 3, 9))).astype(dtype)
    w[2] = 0  # an all-zero row: its max step is 1
    s = (np.abs(w).reshape(7, -1).max(1) / 127).astype(dtype)
    s[2] = 0.01
    x = w / s[:, None, None]
    ev, ed = relaxed_array(x, 8, encoding)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for reduction, k in (("sum", 1.0), ("mean", 1.0 / w.size)):
        value, gw, gs = hamqcore.scaled_hw_penalty(w, s, 8, encoding, reduction, weight=3.0)
        assert value == pytest.approx(3 * k * ev.sum(), rel=tol, abs=0)
        np.testing.assert_allclose(gw, 3 * k * ed / s[:, None, None], rtol=tol, atol=tol)
        np.testing.assert_allclose(gs, -3 * k * (ed * x).reshape(7, -1).sum(1) / s, rtol=tol, atol=tol * 1e3)
        assert gw.dtype == dtype and gs.shape == (7,)
    # one scale for all rows: the scale gradient is the sum over rows
    v1, _, g1 = hamqcore.scaled_hw_penalty(w, np.array(0.002, dtype), 8, encoding)
    ev1, ed1 = relaxed_array(w / dtype(0.002), 8, encoding)
    assert v1 == pytest.approx(ev1.sum(), rel=tol, abs=0)
    assert g1.shape == () and float(g1) == pytest.approx(-(ed1 * w).sum() / 0.002**2, rel=1e-3, abs=0)
    # scale=None: each row's max step, returned; no scale gradient
    v, gw, used = hamqcore.scaled_hw_penalty(w, None, 8, encoding)
    expect = np.where(np.abs(w).reshape(7, -1).max(1) > 0, np.abs(w).reshape(7, -1).max(1) / 127, 1)
    np.testing.assert_allclose(used, expect, rtol=1e-6)
    ev2, _ = relaxed_array(w / used.astype(np.float64)[:, None, None], 8, encoding)
    assert v == pytest.approx(ev2.sum(), rel=tol, abs=0)


def test_scaled_penalty_threads_and_errors():
    w = np.random.default_rng(0).normal(0, 1, size=(64, 40_000)).astype(np.float32)
    runs = [hamqcore.scaled_hw_penalty(w, None, 8, n_threads=n) for n in (1, 2, 3)]
    for v, g, s in runs[1:]:
        assert v == runs[0][0]
        np.testing.assert_array_equal(g, runs[0][1])
        np.testing.assert_array_equal(s, runs[0][2])  # the max step used
    with pytest.raises(ValueError, match=r"scale\[1\] = -1 must be finite and > 0"):
        hamqcore.scaled_hw_penalty(np.ones((3, 2)), np.array([1.0, -1.0, 1.0]), 8)
    # a valid but tiny scale whose reciprocal overflows would give NaN gradients: an error instead
    with pytest.raises(ValueError, match=r"scale\[0\] = 4.94066e-324 must be finite and > 0, with a finite reciprocal"):
        hamqcore.scaled_hw_penalty(np.ones((3, 2)), np.array([5e-324, 1.0, 1.0]), 8)
    with pytest.raises(ValueError, match=r"scale = 1.4013e-45 must be finite and > 0, with a finite reciprocal"):
        hamqcore.scaled_hw_penalty(np.ones((3, 2), np.float32), np.float32(1e-45), 8)
    with pytest.raises(ValueError, match=r"scale must hold 1 value or one per row of w \(3\), got 2"):
        hamqcore.scaled_hw_penalty(np.ones((3, 2)), np.ones(2), 8)
    with pytest.raises(ValueError, match=r"w\[1, 0\] = nan is not finite"):
        hamqcore.scaled_hw_penalty(np.array([[1.0], [np.nan]]), 1.0, 8)
    with pytest.raises(TypeError, match="w must be a float32 or float64 array"):
        hamqcore.scaled_hw_penalty(np.ones(3, np.int32), 1.0, 8)


@st.composite
def priced_weights(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bits = draw(st.integers(2, 12))
    hi = (1 << (bits - 1)) - 1
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(0, 9))
    element = st.one_of(st.integers(-hi - 2, hi + 2).map(float), st.floats(-hi - 3.0, hi + 3.0, width=32))
    x = draw(hnp.arrays(np.float64, (rows, cols), elements=element))
    scale = draw(hnp.arrays(np.float64, (rows,), elements=st.sampled_from([0.5, 1.0, 2.0, 0.25])))
    per_row = draw(st.booleans())
    cost = draw(hnp.arrays(np.float64, (rows, bits) if per_row else (bits,),
                           elements=st.floats(0, 10, allow_nan=False, allow_infinity=False)))
    return (x * scale[:, None]).astype(dtype), scale.astype(dtype), bits, cost


@given(data=priced_weights(), encoding=st.sampled_from(ENCODINGS), relaxation=st.sampled_from(["linear", "cosine"]),
       n_threads=st.sampled_from([1, 2, 3]))
def test_bit_cost_penalty_matches_reference(data, encoding, relaxation, n_threads):
    """Per-bit costs (per tensor or per row): the relaxed level cost sum_p cost_p bit_p(code(k)) and its
    gradients, against the definition; every thread count gives the same bits."""
    w, s, bits, cost = data
    x = w.astype(np.float64) / s.astype(np.float64)[:, None]
    ev, ed = relaxed_array(x, bits, encoding, relaxation, bit_cost=cost)
    value, gw, gs = hamqcore.scaled_hw_penalty(w, s, bits, encoding, "sum", relaxation, n_threads=n_threads,
                                               bit_cost=cost)
    tol = 1e-5 if w.dtype == np.float32 else 1e-11
    scale_c = float(np.abs(cost).sum()) + 1
    assert value == pytest.approx(ev.sum(), rel=tol, abs=tol * scale_c * max(1, w.size))
    np.testing.assert_allclose(gw, ed / s.astype(np.float64)[:, None], rtol=tol, atol=tol * scale_c * 10)
    np.testing.assert_allclose(gs, -(ed * x).sum(1) / s, rtol=tol, atol=tol * scale_c * 1e3)
    one = hamqcore.scaled_hw_penalty(w, s, bits, encoding, "sum", relaxation, n_threads=1, bit_cost=cost)
    assert one[0] == value and np.array_equal(one[1], gw) and np.array_equal(one[2], gs)


@pytest.mark.parametrize("cols, encoding", [(511, "differential"), (512, "offset"), (513, "twos_complement"),
                                           (1100, "sign_magnitude"), (8192 + 515, "differential")])
def test_bit_cost_penalty_across_chunks(isa, cols, encoding):
    """Rows longer than the priced path's 512-weight chunk and 8192-weight block: against the definition,
    and all-ones costs give the HW path's bits."""
    rng = np.random.default_rng(cols)
    w = rng.normal(0, 40, size=(2, cols))
    w[0, ::97] = np.round(w[0, ::97])        # integers too (the derivative's left cost)
    s = np.array([1.0, 0.7])
    cost = rng.uniform(0.5, 3.0, 8)
    for relaxation in ("linear", "cosine"):
        value, gw, gs = hamqcore.scaled_hw_penalty(w, s, 8, encoding, "sum", relaxation, bit_cost=cost)
        ev, ed = relaxed_array(w / s[:, None], 8, encoding, relaxation, bit_cost=cost)
        assert value == pytest.approx(ev.sum(), rel=1e-12, abs=0)
        np.testing.assert_allclose(gw, ed / s[:, None], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(gs, -(ed * (w / s[:, None])).sum(1) / s, rtol=1e-9)
        for f in (np.float32, np.float64):
            plain = hamqcore.scaled_hw_penalty(w.astype(f), s.astype(f), 8, encoding, "sum", relaxation)
            ones = hamqcore.scaled_hw_penalty(w.astype(f), s.astype(f), 8, encoding, "sum", relaxation,
                                              bit_cost=np.ones(8))
            assert ones[0] == plain[0] and np.array_equal(ones[1], plain[1]) and np.array_equal(ones[2], plain[2])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_unit_bit_costs_are_the_hw(encoding):
    w = np.random.default_rng(1).normal(0, 40, size=(5, 300))
    plain = hamqcore.scaled_hw_penalty(w, 1.0, 8, encoding)
    for ones in (np.ones(8), np.ones((5, 8))):
        priced = hamqcore.scaled_hw_penalty(w, 1.0, 8, encoding, bit_cost=ones)
        assert priced[0] == plain[0] and np.array_equal(priced[1], plain[1]) and np.array_equal(priced[2], plain[2])
    hi = 127
    levels = np.arange(-hi, hi + 1)
    np.testing.assert_array_equal(hamqcore.kernels.level_cost(np.ones(8), 8, encoding),
                                  hamqcore.hamming_weight(levels, 8, encoding))
    np.testing.assert_array_equal(hamqcore.kernels.level_codes(8, encoding),
                                  [code(int(k), 8, encoding) for k in levels])
    # one bit priced alone: the level cost is that bit of the code
    c = np.zeros(8)
    c[3] = 2.5
    np.testing.assert_array_equal(hamqcore.kernels.level_cost(c, 8, encoding),
                                  [2.5 * ((code(int(k), 8, encoding) >> 3) & 1) for k in levels])


def test_bit_cost_errors():
    w = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"bit_cost must have shape \(8,\) or \(3, 8\) for bits=8 and 3 rows, got \(7,\)"):
        hamqcore.scaled_hw_penalty(w, 1.0, 8, bit_cost=np.ones(7))
    with pytest.raises(ValueError, match=r"bit_cost must be finite and >= 0, got -1 at flat index 2"):
        hamqcore.scaled_hw_penalty(w, 1.0, 8, bit_cost=[1, 1, -1, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"bit_cost must be finite and >= 0, got nan"):
        hamqcore.scaled_hw_penalty(w, 1.0, 8, bit_cost=np.full(8, np.nan))
    with pytest.raises(TypeError, match="bit_cost must be None or a float array"):
        hamqcore.scaled_hw_penalty(w, 1.0, 8, bit_cost="cheap")
    with pytest.raises(ValueError, match=r"bit_cost must have shape \(8,\), got \(2,\)"):
        hamqcore.kernels.level_cost([1, 2], 8)
    with pytest.raises(ValueError, match=r"bit_cost must be finite and >= 0, got \[1.0, -0.5"):
        hamqcore.kernels.level_cost([1, -0.5, 1, 1, 1, 1, 1, 1], 8)
    with pytest.raises(ValueError, match="bit_cost must be finite and >= 0"):
        hamqcore.kernels.level_cost([1, 1, np.inf, 1], 4)
    with pytest.raises(ValueError, match="bits must be an integer in 2..16, got 17"):
        hamqcore.kernels.level_cost(np.ones(17), 17)
    with pytest.raises(TypeError, match="^bits must be an integer, got '8'"):
        hamqcore.kernels.level_cost(np.ones(8), "8")
    with pytest.raises(ValueError, match="encoding"):
        hamqcore.kernels.level_cost(np.ones(8), 8, "gray")
    # the default encoding is the differential one
    np.testing.assert_array_equal(hamqcore.kernels.level_cost(np.arange(1.0, 9.0), 8),
                                  hamqcore.kernels.level_cost(np.arange(1.0, 9.0), 8, "differential"))
    assert hamqcore.kernels.level_cost(np.arange(1.0, 9.0), 8)[0] != hamqcore.kernels.level_cost(
        np.arange(1.0, 9.0), 8, "offset")[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shift", [0, 1, 3])
def test_large_gradients_are_streamed_bit_for_bit(dtype, shift):
    """Gradients of >= 8 MiB leave through non-temporal stores (kernels_relaxed.hpp store_scaled): the
    same bits as the same elements in pieces too small to stream, on every tier and thread count,
    into an output at any element offset from a vector boundary (its head stored plainly)."""
    from hamqcore import _core

    n = (8 << 20) // np.dtype(dtype).itemsize + 1001
    x = np.random.default_rng(12).normal(0, 30, n).astype(dtype)
    x[::7919] = np.resize(np.arange(-128, 128, dtype=dtype), x[::7919].size)     # some exact levels
    piece = n // 4
    want = np.concatenate([hamqcore.relaxed_hw_penalty(x[i:i + piece], 8, n_threads=1)[1] for i in range(0, n, piece)])
    w, s = x.reshape(1, -1), np.full(1, 0.5, dtype)
    want_scaled = np.concatenate([hamqcore.scaled_hw_penalty(w[:, i:i + piece], s, 8, n_threads=1)[1]
                                  for i in range(0, n, piece)], axis=1)
    buf = np.full(n + 8, np.nan, dtype)
    try:
        for isa in hamqcore.available_isas():
            _core.set_isa(isa)
            for nt in (1, 2):
                out = buf[shift:shift + n]
                _, g = hamqcore.relaxed_hw_penalty(x, 8, n_threads=nt, out=out)
                assert g is out
                np.testing.assert_array_equal(g, want, err_msg=f"{isa}, {nt} threads")
                _, g, _ = hamqcore.scaled_hw_penalty(w, s, 8, n_threads=nt)
                np.testing.assert_array_equal(g, want_scaled, err_msg=f"{isa}, {nt} threads (scaled)")
    finally:
        _core.set_isa(hamqcore.available_isas()[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalties_write_their_gradient_into_a_given_array(dtype):
    """out=: the same value and gradient as a fresh array (both penalties, a given scale and the max
    step, a bit cost), written into out and returned as it; a bad out is an error naming it."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 30, (7, 50)).astype(dtype)
    out = np.full_like(x, np.nan)
    v, g = hamqcore.relaxed_hw_penalty(x, 8, "offset", "mean")
    v2, g2 = hamqcore.relaxed_hw_penalty(x, 8, "offset", "mean", out=out)
    assert v2 == v and g2 is out
    np.testing.assert_array_equal(out, g)
    w, s = x / 40, rng.uniform(0.5, 1.5, 7).astype(dtype) / 40
    for scale, cost in ((s, None), (None, None), (s, rng.uniform(0, 2, 8))):
        out = np.full_like(w, np.nan)
        want = hamqcore.scaled_hw_penalty(w, scale, 8, weight=0.3, bit_cost=cost)
        got = hamqcore.scaled_hw_penalty(w, scale, 8, weight=0.3, bit_cost=cost, out=out)
        assert got[0] == want[0] and got[1] is out
        np.testing.assert_array_equal(out, want[1])
        np.testing.assert_array_equal(got[2], want[2])
    with pytest.raises(ValueError, match="out must not overlap the input"):
        hamqcore.relaxed_hw_penalty(x, 8, out=x)
    with pytest.raises(ValueError, match=r"out must be a writeable C-contiguous array of shape \(7, 50\)"):
        hamqcore.relaxed_hw_penalty(x, 8, out=np.empty((50, 7), dtype))
    with pytest.raises(ValueError, match="out must be a writeable C-contiguous"):
        hamqcore.scaled_hw_penalty(w, s, 8, out=np.empty((7, 50), np.float16))
    with pytest.raises(TypeError, match="out must be a numpy array"):
        hamqcore.relaxed_hw_penalty(x, 8, out=x.tolist())
