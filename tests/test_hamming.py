import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hamqcore
from reference import ENCODINGS, INT_DTYPES, hw_array
from strategies import quantized


@given(data=quantized(), encoding=st.sampled_from(ENCODINGS))
def test_matches_reference(isa, data, encoding):
    q, bits = data
    expect = hw_array(q, bits, encoding)
    got = hamqcore.hamming_weight(q, bits, encoding)
    assert got.dtype == np.uint8 and got.shape == q.shape
    np.testing.assert_array_equal(got, expect)
    assert hamqcore.total_hamming_weight(q, bits, encoding) == int(expect.sum())
    hist = hamqcore.hw_histogram(q, bits, encoding)
    assert hist.dtype == np.int64 and hist.shape == (bits + 1,)
    np.testing.assert_array_equal(hist, np.bincount(expect.ravel(), minlength=bits + 1))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", [2, 5, 8, 11, 16])
def test_large_arrays_threads_and_tiers_agree(isa, dtype, encoding, bits):
    # large enough for the parallel path, odd length for the vector tails
    rng = np.random.default_rng(bits)
    hi = min((1 << (bits - 1)) - 1, np.iinfo(dtype).max)
    q = rng.integers(-hi, hi + 1, size=100_003).astype(dtype)
    expect = hw_array(q[:2000], bits, encoding)
    one = hamqcore.hamming_weight(q, bits, encoding, n_threads=1)
    two = hamqcore.hamming_weight(q, bits, encoding, n_threads=2)
    np.testing.assert_array_equal(one[:2000], expect)
    np.testing.assert_array_equal(one, two)
    total = int(one.sum(dtype=np.int64))
    assert hamqcore.total_hamming_weight(q, bits, encoding, n_threads=1) == total
    assert hamqcore.total_hamming_weight(q, bits, encoding, n_threads=3) == total
    hist = np.bincount(one, minlength=bits + 1)
    np.testing.assert_array_equal(hamqcore.hw_histogram(q, bits, encoding, n_threads=1), hist)
    np.testing.assert_array_equal(hamqcore.hw_histogram(q, bits, encoding, n_threads=-1), hist)


def test_extreme_levels_every_bits_and_encoding():
    for bits in range(2, 17):
        hi = (1 << (bits - 1)) - 1
        levels = np.arange(-hi, hi + 1, dtype=np.int32)
        for enc in ENCODINGS:
            np.testing.assert_array_equal(hamqcore.hamming_weight(levels, bits, enc), hw_array(levels, bits, enc))


def test_total_is_exact_beyond_32_bits():
    n = (1 << 32) // 7 + 1000  # 7 ON cells each: the total needs more than 32 bits
    q = np.full(n, 127, dtype=np.int8)
    assert hamqcore.total_hamming_weight(q, 8) == 7 * n > 2**32
    assert hamqcore.hw_histogram(q, 8)[7] == n


def test_zero_d_and_empty():
    assert hamqcore.hamming_weight(np.int16(-5), 8).shape == ()
    assert int(hamqcore.hamming_weight(np.int16(-5), 8)) == 2
    assert hamqcore.total_hamming_weight(np.int8(3), 4) == 2
    empty = np.zeros((3, 0), dtype=np.int8)
    assert hamqcore.hamming_weight(empty, 8).shape == (3, 0)
    assert hamqcore.total_hamming_weight(empty, 8) == 0
    np.testing.assert_array_equal(hamqcore.hw_histogram(empty, 8), np.zeros(9))
    assert hamqcore.hamming_weight([1, -3], 4).tolist() == [1, 2]  # lists become arrays


@pytest.mark.parametrize("fn", [hamqcore.hamming_weight, hamqcore.total_hamming_weight, hamqcore.hw_histogram])
def test_errors(fn):
    with pytest.raises(TypeError, match=r"q must be an array of signed integers .* got dtype float64"):
        fn(np.zeros(3), 8)
    with pytest.raises(TypeError, match="got dtype uint8"):
        fn(np.zeros(3, np.uint8), 8)
    with pytest.raises(TypeError, match="got dtype bool"):
        fn(np.zeros(3, bool), 8)
    with pytest.raises(ValueError, match=r"q\[1, 2\] = -128 is outside the range \[-127, 127\] of bits=8"):
        fn(np.array([[0, 0, 0], [0, 1, -128]], np.int8), 8)
    with pytest.raises(ValueError, match=r"q\[0\] = 8 is outside the range \[-7, 7\] of bits=4"):
        fn(np.array([8, 100], np.int64), 4)
    with pytest.raises(ValueError, match=r"q = 40000 is outside"):
        fn(np.int32(40000), 16)
    for bad in (1, 17, 0, -3):
        with pytest.raises(ValueError, match=rf"bits must be an integer in 2..16, got {bad}"):
            fn(np.zeros(2, np.int8), bad)
    with pytest.raises(TypeError, match="bits must be an integer, got 8.0"):
        fn(np.zeros(2, np.int8), 8.0)
    with pytest.raises(ValueError, match=r"encoding must be one of 'differential', 'sign_magnitude', 'twos_complement', 'offset', got 'gray'"):
        fn(np.zeros(2, np.int8), 8, "gray")
    with pytest.raises(ValueError, match=r"n_threads must be a thread count in 1..\d+ .* got 0"):
        fn(np.zeros(2, np.int8), 8, n_threads=0)
    too_many = -hamqcore.hardware_threads() - 1
    with pytest.raises(ValueError, match=rf"got {too_many}"):
        fn(np.zeros(2, np.int8), 8, n_threads=too_many)


def test_out_of_range_in_parallel_path_reports_first_index(isa):
    q = np.zeros(200_000, np.int8)
    q[150_001] = -128
    q[170_000] = -128
    with pytest.raises(ValueError, match=r"q\[150001\] = -128"):
        hamqcore.total_hamming_weight(q, 8, n_threads=2)


@pytest.mark.parametrize("n", [1, 31, 32, 33, 63, 64, 65, 1000])
@pytest.mark.parametrize("bits", [2, 7, 8])
def test_int8_blocks_and_tails_every_encoding(isa, n, bits):
    # the int8 vector paths take whole blocks (32 or 64 weights) and leave a tail: every length
    # around a block boundary, every encoding and op, the extreme levels in both parts
    hi = (1 << (bits - 1)) - 1
    q = np.random.default_rng(n * 31 + bits).integers(-hi, hi + 1, size=n).astype(np.int8)
    q[0], q[-1] = -hi, hi
    if n > 33:
        q[31], q[32] = hi, -hi
    for enc in ENCODINGS:
        expect = hw_array(q, bits, enc)
        for nt in (1, 2):
            np.testing.assert_array_equal(hamqcore.hamming_weight(q, bits, enc, n_threads=nt), expect)
            assert hamqcore.total_hamming_weight(q, bits, enc, n_threads=nt) == int(expect.sum())
            np.testing.assert_array_equal(hamqcore.hw_histogram(q, bits, enc, n_threads=nt),
                                          np.bincount(expect, minlength=bits + 1))


@pytest.mark.parametrize("where", [0, 31, 32, 63, 64, 99])
@pytest.mark.parametrize("fn", [hamqcore.hamming_weight, hamqcore.total_hamming_weight, hamqcore.hw_histogram])
def test_int8_out_of_range_in_block_or_tail(isa, where, fn):
    # one value beyond the range, in a vector block or in the scalar tail (n = 100), low or high side
    for bad, bits in ((-128, 8), (8, 4), (-9, 4)):
        q = np.zeros(100, np.int8)
        q[where] = bad
        with pytest.raises(ValueError, match=rf"q\[{where}\] = {bad} is outside"):
            fn(q, bits)


def test_does_not_modify_input():
    q = np.arange(-100, 100, dtype=np.int16)[::-1]
    before = q.copy()
    hamqcore.hamming_weight(q, 8, "offset")
    np.testing.assert_array_equal(q, before)


def test_thread_settings():
    n = hamqcore.get_num_threads()
    assert n >= 1 and hamqcore.hardware_threads() >= 1
    assert isinstance(hamqcore.openmp_enabled(), bool)
    try:
        hamqcore.set_num_threads(1)
        assert hamqcore.get_num_threads() == 1
        hamqcore.set_num_threads(-1)
        assert hamqcore.get_num_threads() == hamqcore.hardware_threads()
        with pytest.raises(ValueError, match="got 0"):
            hamqcore.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an integer"):
            hamqcore.set_num_threads(1.5)
    finally:
        hamqcore.set_num_threads(n)


def test_isa_selection():
    from hamqcore import _core

    assert hamqcore.available_isas()[-1] == "baseline"
    assert hamqcore.active_isa() == hamqcore.available_isas()[0]
    with pytest.raises(ValueError, match=r"isa must be one of .*'baseline'.* got 'sse9'"):
        _core.set_isa("sse9")


def test_releases_the_gil():
    import threading
    import time

    q = np.ones(1 << 25, np.int8)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        for _ in range(20):
            hamqcore.hamming_weight(q, 8, n_threads=1)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if start < x < end]
    assert len(during) >= 5  # the other thread kept running while the kernel computed
