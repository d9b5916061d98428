#include "hamqcore/bitplanes.hpp"
#include <cstdint>

#include "threading.hpp"

namespace hamq {

namespace {

template <class T>
int64_t pack_impl(const T* q, int64_t rows, int64_t k, int bits, Encoding e, int cb, uint64_t* out,
                  int n_threads) {
    const int64_t bad = first_out_of_range(q, rows * k, bits);
    if (bad >= 0) return bad;
    const int D = bitplane_digits(bits, e, cb), A = bitplane_arrays(e);
    const int64_t W = bitplane_words(k, cb), per = 64 / cb;
    const uint64_t dmask = (uint64_t(1) << cb) - 1;
    const int64_t plane = rows * W;
    const int nt = threads_for(rows * k, n_threads);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        for (int a = 0; a < A; ++a)
            for (int d = 0; d < D; ++d)
                for (int64_t w = 0; w < W; ++w) out[(int64_t(a) * D + d) * plane + r * W + w] = 0;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t v = int64_t(q[r * k + j]);
            int a = 0;
            uint64_t code;
            if (e == Encoding::Differential) {
                a = v < 0 ? 1 : 0;
                code = uint64_t(v < 0 ? -v : v);
            } else {
                code = encode(v, bits, e);
            }
            const int64_t w = j / per;
            const int shift = int(j % per) * cb;
            for (int d = 0; d < D && code; ++d, code >>= cb)
                out[(int64_t(a) * D + d) * plane + r * W + w] |= (code & dmask) << shift;
        }
    }
    return -1;
}

}  // namespace

int64_t pack_bitplanes(IntType t, const void* q, int64_t rows, int64_t k, int bits, Encoding e,
                       int cell_bits, uint64_t* out, int n_threads) {
    switch (t) {
        case IntType::I8: return pack_impl(static_cast<const int8_t*>(q), rows, k, bits, e, cell_bits, out, n_threads);
        case IntType::I16: return pack_impl(static_cast<const int16_t*>(q), rows, k, bits, e, cell_bits, out, n_threads);
        case IntType::I32: return pack_impl(static_cast<const int32_t*>(q), rows, k, bits, e, cell_bits, out, n_threads);
        case IntType::I64: default: return pack_impl(static_cast<const int64_t*>(q), rows, k, bits, e, cell_bits, out, n_threads);
    }
}

int64_t unpack_bitplanes(const uint64_t* planes, int64_t rows, int64_t k, int bits, Encoding e,
                         int cb, int8_t* out8, int16_t* out16, int n_threads) {
    const int D = bitplane_digits(bits, e, cb), A = bitplane_arrays(e);
    const int64_t W = bitplane_words(k, cb), per = 64 / cb;
    const uint64_t dmask = (uint64_t(1) << cb) - 1;
    const int64_t plane = rows * W;
    const int sb = stored_bits(bits, e);
    const int64_t hi = level_max(bits);
    const int nt = threads_for(rows * k, n_threads);
    const int64_t none = INT64_MAX;
    int64_t first_bad = none;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(min : first_bad)
    for (int64_t r = 0; r < rows; ++r) {
        int64_t row_bad = -1;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t w = j / per;
            const int shift = int(j % per) * cb;
            uint64_t code[2] = {0, 0};
            for (int a = 0; a < A; ++a)
                for (int d = 0; d < D; ++d)
                    code[a] |= ((planes[(int64_t(a) * D + d) * plane + r * W + w] >> shift) & dmask)
                               << (d * cb);
            int64_t v;
            bool ok = (code[0] >> sb) == 0 && (code[1] >> sb) == 0;
            if (e == Encoding::Differential) {
                ok = ok && !(code[0] && code[1]);
                v = int64_t(code[0]) - int64_t(code[1]);
            } else {
                v = decode(code[0], bits, e);
                ok = ok && v >= -hi && v <= hi && encode(v, bits, e) == code[0];
            }
            if (!ok && row_bad < 0) row_bad = r * k + j;
            if (out8) out8[r * k + j] = int8_t(v);
            else out16[r * k + j] = int16_t(v);
        }
        if (row_bad >= 0 && row_bad < first_bad) first_bad = row_bad;
    }
    return first_bad == none ? -1 : first_bad;
}

}  // namespace hamq
