"""Hypothesis strategies shared by the kernel tests."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import INT_DTYPES


@st.composite
def quantized(draw, min_dims=0, max_dims=3, max_side=9):
    """(q, bits): a signed-integer array in the symmetric range of bits, maybe non-contiguous."""
    dtype = draw(st.sampled_from(INT_DTYPES))
    width = np.iinfo(dtype).bits
    bits = draw(st.integers(2, 16))
    hi = min((1 << (bits - 1)) - 1, np.iinfo(dtype).max)
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side))
    q = draw(hnp.arrays(dtype, shape, elements=st.integers(-hi, hi)))
    q = draw(layouts(q))
    assert width >= 8
    return q, bits


@st.composite
def layouts(draw, a):
    """The same values as a, laid out contiguously, reversed, strided or transposed."""
    kind = draw(st.sampled_from(["contiguous", "reversed", "strided", "transposed", "fortran"]))
    if a.ndim == 0 or kind == "contiguous":
        return a
    if kind == "reversed":
        return a[..., ::-1]
    if kind == "strided":
        big = np.repeat(a, 2, axis=-1)
        return big[..., ::2]
    if kind == "transposed":
        return np.ascontiguousarray(a.T).T
    return np.asfortranarray(a)
