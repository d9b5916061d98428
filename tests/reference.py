"""Slow, obviously-correct references for every kernel (plain Python integers and loops)."""
import math

import numpy as np

ENCODINGS = ("differential", "sign_magnitude", "twos_complement", "offset")
INT_DTYPES = (np.int8, np.int16, np.int32, np.int64)


def code(q: int, bits: int, encoding: str) -> int:
    q = int(q)
    if encoding == "differential":
        return abs(q)
    if encoding == "sign_magnitude":
        return abs(q) | ((q < 0) << (bits - 1))
    if encoding == "twos_complement":
        return q % (1 << bits)
    if encoding == "offset":
        return q + (1 << (bits - 1))
    raise AssertionError(encoding)


def hw(q: int, bits: int, encoding: str) -> int:
    return bin(code(q, bits, encoding)).count("1")


def hw_array(q, bits, encoding):
    q = np.asarray(q)
    return np.array([hw(v, bits, encoding) for v in q.ravel()], dtype=np.uint8).reshape(q.shape)


def pack(q, bits, encoding, cell_bits):
    """Bit-plane layout documented in hamqcore.pack_bitplanes, built one bit at a time."""
    q = np.asarray(q)
    if q.ndim == 0:
        q = q.reshape(1)
    k = q.shape[-1]
    rows = q.reshape(-1, k) if k else np.zeros((int(np.prod(q.shape[:-1])), 0), dtype=q.dtype)
    stored = bits - 1 if encoding == "differential" else bits
    digits = -(-stored // cell_bits)
    per = 64 // cell_bits
    words = -(-k // per)
    arrays = 2 if encoding == "differential" else 1
    out = [[[[0] * words for _ in range(rows.shape[0])] for _ in range(digits)] for _ in range(arrays)]
    for r in range(rows.shape[0]):
        for j in range(k):
            v = int(rows[r, j])
            if encoding == "differential":
                a, c = (1, -v) if v < 0 else (0, v)
            else:
                a, c = 0, code(v, bits, encoding)
            for d in range(digits):
                digit = (c >> (d * cell_bits)) & ((1 << cell_bits) - 1)
                out[a][d][r][j // per] |= digit << ((j % per) * cell_bits)
    arr = np.array(out, dtype=np.uint64).reshape(arrays, digits, *q.shape[:-1], words)
    return arr if arrays == 2 else arr[0]


def level_cost(k: int, bits: int, encoding: str, bit_cost) -> float:
    """sum of bit_cost[p] over the 1-bits p of level k's code (LSB first)."""
    c = code(k, bits, encoding)
    return float(sum(bit_cost[p] for p in range(bits) if (c >> p) & 1))


def relaxed(x: float, bits: int, encoding: str, relaxation: str = "linear", bit_cost=None):
    """(value, derivative) straight from the definition, in float64; with ``bit_cost`` the relaxed
    quantity is the level cost instead of the HW."""
    hi = (1 << (bits - 1)) - 1
    lo = -hi
    if bit_cost is None:
        h = lambda k: hw(k, bits, encoding)  # noqa: E731
    else:
        h = lambda k: level_cost(k, bits, encoding, bit_cost)  # noqa: E731
    if x < lo or x > hi:
        return float(h(lo if x < lo else hi)), 0.0
    if relaxation == "cosine":
        k = min(math.floor(x), hi - 1)
        f = x - k
        value = h(k) + (h(k + 1) - h(k)) * (1 - math.cos(math.pi * f)) / 2
        slope = (h(k + 1) - h(k)) * math.pi / 2 * math.sin(math.pi * f)
        return value, (0.0 if f in (0.0, 1.0) else slope)
    if x == math.floor(x):
        k = int(x)
        left = h(k) - h(k - 1) if k > lo else 0.0
        right = h(k + 1) - h(k) if k < hi else 0.0
        return float(h(k)), 0.5 * (left + right)
    k = math.floor(x)
    f = x - k
    return h(k) + f * (h(k + 1) - h(k)), float(h(k + 1) - h(k))


def relaxed_array(x, bits, encoding, relaxation="linear", bit_cost=None):
    """Elementwise :func:`relaxed`; ``bit_cost`` of shape (bits,) or (rows of x, bits)."""
    x = np.asarray(x, dtype=np.float64)
    if bit_cost is not None and np.ndim(bit_cost) == 2:
        rows = [relaxed_array(x[r], bits, encoding, relaxation, bit_cost[r]) for r in range(x.shape[0])]
        return np.stack([r[0] for r in rows]).reshape(x.shape), np.stack([r[1] for r in rows]).reshape(x.shape)
    pairs = [relaxed(float(v), bits, encoding, relaxation, bit_cost) for v in x.ravel()]
    values = np.array([p[0] for p in pairs], dtype=np.float64).reshape(x.shape)
    derivs = np.array([p[1] for p in pairs], dtype=np.float64).reshape(x.shape)
    return values, derivs


def _round_half_even(x):
    """The nearest integer to a finite x, a tie to the even one (by hand, no library rounding)."""
    lo = math.floor(x)
    frac = x - lo                               # exact: x and floor(x) share the exponent range
    return lo + 1 if frac > 0.5 or (frac == 0.5 and lo % 2 == 1) else lo


def quantize_rows(w, bits, step=None):
    """Per row: the step (given, or max|w| / qmax in w's precision, 1 for an all-zero row) and every
    weight's level, one element at a time in w's precision (numpy scalars: IEEE division), rounded half
    to even by hand, clamped to +-qmax."""
    w = np.asarray(w)
    t = w.dtype.type
    qmax = (1 << (bits - 1)) - 1
    q = np.zeros(w.shape, np.int64)
    steps = np.zeros(w.shape[0], w.dtype)
    for r in range(w.shape[0]):
        if step is None:
            m = t(0)
            for v in w[r]:
                m = max(m, abs(v))
            s = m / t(qmax) if m > 0 else t(1)
        else:
            s = t(step[r])
        steps[r] = s
        for i, v in enumerate(w[r]):
            x = v / s                                   # one IEEE division in w's precision
            q[r, i] = min(max(_round_half_even(x), -qmax), qmax)
    return q, steps


def fake_quantize(x, step, lo, hi):
    """clamp(round(x / step), lo, hi) * step one element at a time in x's precision (numpy scalars:
    IEEE division and product); NaN stays NaN, +-inf clamps."""
    x = np.asarray(x)
    t = x.dtype.type
    s, lo, hi = t(step), t(lo), t(hi)
    out = np.empty_like(x)
    flat = out.reshape(-1)
    for i, v in enumerate(x.reshape(-1)):
        with np.errstate(over="ignore"):            # the largest values over a step < 1: inf, as IEEE
            q = v / s
        if math.isnan(q):
            flat[i] = q
            continue
        level = t(_round_half_even(q)) if math.isfinite(q) else q
        level = lo if level < lo else (hi if level > hi else level)
        flat[i] = level * s
    return out


def fake_quantize_backward(x, grad, step, lo, hi):
    """The straight-through gradient autograd takes through fake quantization's operations: the
    incoming gradient times step (the product's backward), kept where lo <= round(x / step) <= hi
    (the clamp's), divided by step (the division's), one element at a time in x's precision."""
    x, grad = np.asarray(x), np.asarray(grad)
    t = x.dtype.type
    s, lo, hi = t(step), t(lo), t(hi)
    out = np.empty_like(grad)
    flat = out.reshape(-1)
    for i, (v, g) in enumerate(zip(x.reshape(-1), grad.reshape(-1))):
        with np.errstate(over="ignore"):
            q = v / s
        level = t(_round_half_even(q)) if math.isfinite(q) else q
        flat[i] = (g * s) / s if lo <= level <= hi else t(0)
    return out
