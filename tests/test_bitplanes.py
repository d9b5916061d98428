import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hamqcore
from reference import ENCODINGS, pack
from strategies import quantized


@given(data=quantized(max_side=70), encoding=st.sampled_from(ENCODINGS), cell_bits=st.sampled_from([1, 2, 4]))
def test_layout_matches_reference_and_round_trips(data, encoding, cell_bits):
    q, bits = data
    planes = hamqcore.pack_bitplanes(q, bits, encoding, cell_bits)
    np.testing.assert_array_equal(planes, pack(q, bits, encoding, cell_bits))
    length = q.shape[-1] if q.ndim else 1
    back = hamqcore.unpack_bitplanes(planes, length, bits, encoding, cell_bits)
    assert back.dtype == (np.int8 if bits <= 8 else np.int16)
    np.testing.assert_array_equal(back, q.reshape(back.shape))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("cell_bits", [1, 2, 4])
def test_threads_agree_and_popcount_of_planes_is_hw(encoding, cell_bits):
    rng = np.random.default_rng(7)
    q = rng.integers(-127, 128, size=(300, 257)).astype(np.int16)
    one = hamqcore.pack_bitplanes(q, 8, encoding, cell_bits, n_threads=1)
    two = hamqcore.pack_bitplanes(q, 8, encoding, cell_bits, n_threads=2)
    np.testing.assert_array_equal(one, two)
    if cell_bits == 1:  # one bit per cell: ON cells = set bits of all planes
        assert int(np.bitwise_count(one).sum()) == hamqcore.total_hamming_weight(q, 8, encoding)
    np.testing.assert_array_equal(hamqcore.unpack_bitplanes(two, 257, 8, encoding, cell_bits, n_threads=2), q)


def test_shapes():
    q = np.zeros((3, 5, 130), np.int8)
    assert hamqcore.pack_bitplanes(q, 8).shape == (2, 7, 3, 5, 3)
    assert hamqcore.pack_bitplanes(q, 8, "offset").shape == (8, 3, 5, 3)
    assert hamqcore.pack_bitplanes(q, 8, "offset", cell_bits=4).shape == (2, 3, 5, 9)
    assert hamqcore.pack_bitplanes(q, 6, "differential", cell_bits=2).shape == (2, 3, 3, 5, 5)
    assert hamqcore.pack_bitplanes(np.int8(3), 4, "offset").shape == (4, 1)
    assert hamqcore.pack_bitplanes(np.zeros((2, 0), np.int8), 4, "offset").shape == (4, 2, 0)
    assert hamqcore.unpack_bitplanes(np.zeros((4, 2, 0), np.uint64), 0, 4, "offset").shape == (2, 0)


def test_errors():
    with pytest.raises(ValueError, match=r"cell_bits must be one of 1, 2, 4, got 3"):
        hamqcore.pack_bitplanes(np.zeros(4, np.int8), 8, cell_bits=3)
    with pytest.raises(ValueError, match=r"q\[2\] = 9 is outside the range \[-7, 7\] of bits=4"):
        hamqcore.pack_bitplanes(np.array([0, 1, 9], np.int8), 4)
    with pytest.raises(TypeError, match="planes must be a uint64 array"):
        hamqcore.unpack_bitplanes(np.zeros((2, 7, 1), np.int64), 3, 8)
    with pytest.raises(ValueError, match=r"planes has shape \(7, 1\); for bits=8, encoding='differential', cell_bits=1 and length=3 it must be \(2, 7, \.\.\., 1\)"):
        hamqcore.unpack_bitplanes(np.zeros((7, 1), np.uint64), 3, 8)
    with pytest.raises(ValueError, match=r"length must be in 0..2\^62-1"):
        hamqcore.unpack_bitplanes(np.zeros((8, 1), np.uint64), -1, 8, "offset")
    # both arrays of the differential encoding hold a 1 for weight 0
    planes = hamqcore.pack_bitplanes(np.array([1, 2], np.int8), 8)
    planes[1, 0, 0] |= np.uint64(1)
    with pytest.raises(ValueError, match=r"planes do not hold a valid differential code for bits=8 at weight q\[0\]"):
        hamqcore.unpack_bitplanes(planes, 2, 8)
    # offset code 0 would be -2^(bits-1), outside the symmetric range
    planes = hamqcore.pack_bitplanes(np.array([[5, 0], [0, 0]], np.int8), 4, "offset")
    planes[3, 1, 0] &= ~np.uint64(1 << 1)
    with pytest.raises(ValueError, match=r"at weight q\[1, 1\]"):
        hamqcore.unpack_bitplanes(planes, 2, 4, "offset")
    # a digit bit beyond the stored bits (7 magnitude bits in 4 two-bit digits)
    planes = hamqcore.pack_bitplanes(np.array([0], np.int8), 8, cell_bits=2)
    planes[0, 3, 0] = np.uint64(2)
    with pytest.raises(ValueError, match=r"at weight q\[0\]"):
        hamqcore.unpack_bitplanes(planes, 1, 8, cell_bits=2)
