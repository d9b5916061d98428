// The hot kernels, written once and compiled once per instruction-set tier: isa_baseline.cpp,
// isa_avx2.cpp and isa_avx512.cpp define HAMQ_ISA_NS and include this file with their own compiler
// flags. Everything lives in an anonymous namespace (internal linkage), so no symbol compiled for a
// wider ISA can be picked up by the linker for a narrower one; only make_table() is exported.
//
// Loops are written so the compiler vectorises them (fixed lane counts, no data-dependent
// branches); the AVX-512 BITALG int8 path for Hamming weights is written with intrinsics because
// it must run at memory bandwidth.
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>
#include "hamqcore/encoding.hpp"
#include "kernel_table.hpp"

#if defined(__AVX512BW__) && defined(__AVX512BITALG__) && defined(__AVX512VPOPCNTDQ__)
#include <immintrin.h>
#define HAMQ_HAVE_AVX512_INTRIN 1
#endif

#ifndef HAMQ_ISA_NS
#error "define HAMQ_ISA_NS before including kernels_impl.hpp"
#endif

namespace hamq {
namespace HAMQ_ISA_NS {
namespace {

// Below this many elements the kernels stay on one thread (thread start-up costs more).
constexpr int64_t kParallelGrain = 1 << 15;

inline int threads_for(int64_t n, int n_threads) { return n >= kParallelGrain ? n_threads : 1; }

// ---------------------------------------------------------------------------------------------
// Integer Hamming weights
// ---------------------------------------------------------------------------------------------

template <class T>
using Wide = std::conditional_t<(sizeof(T) <= 4), int32_t, int64_t>;
template <class T>
using UWide = std::conditional_t<(sizeof(T) <= 4), uint32_t, uint64_t>;

template <class U>
inline unsigned popc(U v) {
    if constexpr (sizeof(U) <= 4) return unsigned(__builtin_popcount(uint32_t(v)));
    else return unsigned(__builtin_popcountll(uint64_t(v)));
}

// ON cells of one weight, encoding fixed at compile time so the loops vectorise.
template <class T, int E>
inline unsigned hw_elem(T q, UWide<T> mask, UWide<T> half) {
    using S = Wide<T>;
    using U = UWide<T>;
    const S s = S(q);
    const U mag = s < 0 ? U(0) - U(s) : U(s);
    if constexpr (E == int(Encoding::Differential)) return popc(mag);
    else if constexpr (E == int(Encoding::SignMagnitude)) return popc(mag) + unsigned(s < 0);
    else if constexpr (E == int(Encoding::TwosComplement)) return popc(U(s) & mask);
    else return popc(U(U(s) + half) & mask);
}

// After a pass that tracked min/max: index of the first out-of-range value, or -1.
template <class T>
int64_t first_out_of_range(const T* q, int64_t n, int bits, int64_t mn, int64_t mx) {
    const int64_t hi = level_max(bits);
    if (mn >= -hi && mx <= hi) return -1;
    return hamq::first_out_of_range(q, n, bits);
}

enum class HwOp { Map, Total, Hist };

// One generic pass: range check fused with the per-element HW, consumed as a map, a sum or a
// histogram. Integer reductions are exact, so the result is independent of the thread count.
template <class T, int E, HwOp OP>
int64_t hw_pass(const T* q, int64_t n, int bits, uint8_t* out, uint64_t* total, int64_t* hist,
                int n_threads) {
    using S = Wide<T>;
    using U = UWide<T>;
    const U mask = U((uint64_t(1) << bits) - 1);
    const U half = U(uint64_t(1) << (bits - 1));
    S mn = 0, mx = 0;
    uint64_t sum = 0;
    const int nt = threads_for(n, n_threads);
    if constexpr (OP == HwOp::Hist) {
        int64_t h[kMaxBits + 1] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx)
        {
            int64_t local[kMaxBits + 1] = {0};
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; ++i) {
                const S s = S(q[i]);
                mn = s < mn ? s : mn;
                mx = s > mx ? s : mx;
                local[hw_elem<T, E>(q[i], mask, half)] += 1;
            }
#pragma omp critical
            for (int b = 0; b <= kMaxBits; ++b) h[b] += local[b];
        }
        for (int b = 0; b <= bits; ++b) hist[b] = h[b];
    } else {
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(min : mn) reduction(max : mx) reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) {
            const S s = S(q[i]);
            mn = s < mn ? s : mn;
            mx = s > mx ? s : mx;
            const unsigned h = hw_elem<T, E>(q[i], mask, half);
            if constexpr (OP == HwOp::Map) out[i] = uint8_t(h);
            else sum += h;
        }
        if constexpr (OP == HwOp::Total) *total = sum;
    }
    return first_out_of_range(q, n, bits, int64_t(mn), int64_t(mx));
}

#ifdef HAMQ_HAVE_AVX512_INTRIN
// int8 weights with bits <= 8: 64 weights per instruction with VPOPCNTB; the range check is a
// running byte min/max. Runs at memory bandwidth.
template <int E, HwOp OP>
int64_t hw_pass_i8_avx512(const int8_t* q, int64_t n, int bits, uint8_t* out, uint64_t* total,
                          int64_t* hist, int n_threads) {
    const int64_t nblk = (n + 63) / 64;
    const int nt = threads_for(n, n_threads);
    int mn = 0, mx = 0;
    uint64_t sum = 0;
    int64_t h[kMaxBits + 1] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx) reduction(+ : sum)
    {
        const __m512i vmask = _mm512_set1_epi8(char((1u << bits) - 1));
        const __m512i vhalf = _mm512_set1_epi8(char(1u << (bits - 1)));
        const __m512i ones = _mm512_set1_epi8(1);
        const __m512i zero = _mm512_setzero_si512();
        __m512i vmin = zero, vmax = zero, vsum = zero;
        int64_t local[kMaxBits + 1] = {0};
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; ++b) {
            const int64_t i = b * 64;
            const __mmask64 m = (n - i >= 64) ? ~__mmask64(0) : ((__mmask64(1) << (n - i)) - 1);
            const __m512i v = _mm512_maskz_loadu_epi8(m, q + i);
            vmin = _mm512_min_epi8(vmin, v);
            vmax = _mm512_max_epi8(vmax, v);
            __m512i pc;
            if constexpr (E == int(Encoding::Differential)) {
                pc = _mm512_popcnt_epi8(_mm512_abs_epi8(v));
            } else if constexpr (E == int(Encoding::SignMagnitude)) {
                pc = _mm512_popcnt_epi8(_mm512_abs_epi8(v));
                pc = _mm512_mask_add_epi8(pc, _mm512_movepi8_mask(v), pc, ones);
            } else if constexpr (E == int(Encoding::TwosComplement)) {
                pc = _mm512_popcnt_epi8(_mm512_and_si512(v, vmask));
            } else {
                pc = _mm512_popcnt_epi8(_mm512_and_si512(_mm512_add_epi8(v, vhalf), vmask));
            }
            pc = _mm512_maskz_mov_epi8(m, pc);  // padding lanes contribute nothing
            if constexpr (OP == HwOp::Map) {
                _mm512_mask_storeu_epi8(out + i, m, pc);
            } else if constexpr (OP == HwOp::Total) {
                vsum = _mm512_add_epi64(vsum, _mm512_sad_epu8(pc, zero));
            } else {
                for (int k = 0; k <= bits; ++k)
                    local[k] += __builtin_popcountll(
                        _mm512_mask_cmpeq_epi8_mask(m, pc, _mm512_set1_epi8(char(k))));
            }
        }
        alignas(64) int8_t lo[64], hi[64];
        _mm512_store_si512(lo, vmin);
        _mm512_store_si512(hi, vmax);
        for (int k = 0; k < 64; ++k) {
            mn = lo[k] < mn ? lo[k] : mn;
            mx = hi[k] > mx ? hi[k] : mx;
        }
        sum += uint64_t(_mm512_reduce_add_epi64(vsum));
        if constexpr (OP == HwOp::Hist) {
#pragma omp critical
            for (int k = 0; k <= bits; ++k) h[k] += local[k];
        }
    }
    if constexpr (OP == HwOp::Total) *total = sum;
    if constexpr (OP == HwOp::Hist)
        for (int k = 0; k <= bits; ++k) hist[k] = h[k];
    return first_out_of_range(q, n, bits, mn, mx);
}
#endif

template <HwOp OP, class T>
int64_t hw_dispatch_enc(const T* q, int64_t n, int bits, Encoding e, uint8_t* out, uint64_t* total,
                        int64_t* hist, int nt) {
#ifdef HAMQ_HAVE_AVX512_INTRIN
    if constexpr (std::is_same_v<T, int8_t>) {
        if (bits <= 8) {
            switch (e) {
                case Encoding::Differential: return hw_pass_i8_avx512<0, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::SignMagnitude: return hw_pass_i8_avx512<1, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::TwosComplement: return hw_pass_i8_avx512<2, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::Offset: return hw_pass_i8_avx512<3, OP>(q, n, bits, out, total, hist, nt);
            }
        }
    }
#endif
    switch (e) {
        case Encoding::Differential: return hw_pass<T, 0, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::SignMagnitude: return hw_pass<T, 1, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::TwosComplement: return hw_pass<T, 2, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::Offset: default: return hw_pass<T, 3, OP>(q, n, bits, out, total, hist, nt);
    }
}

template <HwOp OP>
int64_t hw_dispatch(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out,
                    uint64_t* total, int64_t* hist, int nt) {
    switch (t) {
        case IntType::I8: return hw_dispatch_enc<OP>(static_cast<const int8_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I16: return hw_dispatch_enc<OP>(static_cast<const int16_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I32: return hw_dispatch_enc<OP>(static_cast<const int32_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I64: default: return hw_dispatch_enc<OP>(static_cast<const int64_t*>(q), n, bits, e, out, total, hist, nt);
    }
}

int64_t hw_map(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out, int nt) {
    return hw_dispatch<HwOp::Map>(t, q, n, bits, e, out, nullptr, nullptr, nt);
}
int64_t hw_total(IntType t, const void* q, int64_t n, int bits, Encoding e, uint64_t* total, int nt) {
    return hw_dispatch<HwOp::Total>(t, q, n, bits, e, nullptr, total, nullptr, nt);
}
int64_t hw_hist(IntType t, const void* q, int64_t n, int bits, Encoding e, int64_t* hist, int nt) {
    return hw_dispatch<HwOp::Hist>(t, q, n, bits, e, nullptr, nullptr, hist, nt);
}

// ---------------------------------------------------------------------------------------------
// Relaxed Hamming weight
// ---------------------------------------------------------------------------------------------

// HW of an integer level k (|k| < 2^15) in encoding E, branch-free on 32-bit lanes.
template <int E>
inline int hw_int(int32_t k, uint32_t mask, uint32_t half) {
    return int(hw_elem<int32_t, E>(k, mask, half));
}

// Value and derivative of the relaxed HW at x (see relaxed.hpp for the definition).
template <class F, int E, int R>
inline void relaxed_point(F x, int bits, F& value, F& deriv) {
    const int32_t hi = int32_t(level_max(bits)), lo = -hi;
    const uint32_t mask = (uint32_t(1) << bits) - 1, half = uint32_t(1) << (bits - 1);
    const F flo = F(lo), fhi = F(hi);
    const F xl = x < flo ? flo : x;  // two unconditional compares (vectorisable)
    const F xc = xl > fhi ? fhi : xl;
    F kf = __builtin_floor(xc);
    kf = kf > fhi - F(1) ? fhi - F(1) : kf;  // so that k + 1 <= hi; x == hi gives f == 1
    kf = kf == kf ? kf : F(0);                // NaN input: keep the lookups in range (flagged)
    const int32_t k = int32_t(kf);
    const F f = xc - kf;
    const int t0 = hw_int<E>(k, mask, half);
    const int t1 = hw_int<E>(k + 1, mask, half);
    const F dr = F(t1 - t0);
    const bool outside = (x < flo) | (x > fhi);
    if constexpr (R == int(Relaxation::Linear)) {
        value = F(t0) + f * dr;
        const int tm = hw_int<E>(k - 1, mask, half);
        const F left = k > lo ? F(t0 - tm) : F(0);
        F d = f == F(0) ? F(0.5) * (left + dr) : dr;
        d = x == fhi ? F(0.5) * dr : d;
        deriv = outside ? F(0) : d;
    } else {
        const F pi = F(3.14159265358979323846);
        value = F(t0) + dr * (F(1) - F(__builtin_cos(double(pi * f)))) * F(0.5);
        const F d = dr * pi * F(0.5) * F(__builtin_sin(double(pi * f)));
        deriv = (outside | (x == fhi) | (f == F(0))) ? F(0) : d;
    }
}

// Non-finite detector usable in vectorised loops: x - x is NaN exactly for NaN and +-inf.
template <class F>
inline bool not_finite(F x) { return (x - x) != F(0); }

template <class F>
int64_t first_not_finite(const F* x, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
        if (not_finite(x[i])) return i;
    return -1;
}

template <class F, int E, int R>
int64_t relaxed_map(const F* x, int64_t n, int bits, F* value, F* deriv, int n_threads) {
    int bad = 0;
    const int nt = threads_for(n, n_threads);
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(| : bad)
    for (int64_t i = 0; i < n; ++i) {
        bad |= int(not_finite(x[i]));
        relaxed_point<F, E, R>(x[i], bits, value[i], deriv[i]);
    }
    return bad ? first_not_finite(x, n) : -1;
}

// Fused penalty: tasks of kBlock elements, kLanes independent partial sums per task (so the loop
// vectorises without reassociating), task sums added in task order. Both the blocking and the lane
// assignment are fixed, so the value is bitwise identical for any thread count and tier.
constexpr int64_t kBlock = 8192;
constexpr int kLanes = 16;

// Row-scaled penalty: tasks are (row, block of kBlock columns), each with its own value and
// scale-gradient partials, reduced in task order. grad_scale == nullptr: no scale gradient (the
// unscaled penalty is one row with scale 1: x / 1 is exact).
// One task's elementwise pass: values into vbuf, gradients into gb and, with SGRAD, d * x into
// sbuf. Returns nonzero if some w is not finite.
template <class F, int E, int R, bool SGRAD>
inline int penalty_block(const F* wb, int64_t len, F s, F gstep, int bits, F* vbuf, F* gb, F* sbuf) {
    int bad = 0;
#pragma omp simd reduction(| : bad)
    for (int64_t j = 0; j < len; ++j) {
        bad |= int(not_finite(wb[j]));
        const F x = wb[j] / s;
        F d;
        relaxed_point<F, E, R>(x, bits, vbuf[j], d);
        gb[j] = d * gstep;
        if constexpr (SGRAD) sbuf[j] = d * x;  // -d/ds = d w / s^2 = d x / s (1/s applied once later)
    }
    return bad;
}

template <class F, int E, int R>
int64_t relaxed_penalty_rows(const F* w, int64_t rows, int64_t cols, F* scale, bool from_max,
                             int bits, double value_scale, double* value, F* grad_w, F* grad_scale,
                             int n_threads) {
    if (from_max) {  // symmetric max step per row; a non-finite w is reported by the main pass
        const F qmax = F(level_max(bits));
        const int nt0 = threads_for(rows * cols, n_threads);
#pragma omp parallel for num_threads(nt0) schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            F m = F(0);
            const F* wr = w + r * cols;
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < cols; ++j) {
                const F a = wr[j] < F(0) ? -wr[j] : wr[j];
                m = a > m ? a : m;
            }
            scale[r] = (m > F(0) && !not_finite(m)) ? m / qmax : F(1);
        }
    }
    for (int64_t r = 0; r < rows; ++r)
        if (!(scale[r] > F(0)) || not_finite(scale[r]) || not_finite(F(1) / scale[r])) return rows * cols + r;
    const bool scale_grad = !from_max && grad_scale != nullptr;
    const int64_t bpr = cols > 0 ? (cols + kBlock - 1) / kBlock : 0;  // blocks per row
    const int64_t ntask = rows * bpr;
    std::vector<double> pv(static_cast<size_t>(ntask), 0.0), ps(size_t(ntask), 0.0);
    const F gscale = F(value_scale);
    int bad = 0;
    const int nt = threads_for(rows * cols, n_threads);
#pragma omp parallel num_threads(nt) reduction(| : bad)
    {
        std::vector<F> vbuf_store(static_cast<size_t>(kBlock)), sbuf_store(static_cast<size_t>(kBlock));
        F* vbuf = vbuf_store.data();
        F* sbuf = sbuf_store.data();
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntask; ++task) {
            const int64_t r = task / bpr, j0 = (task % bpr) * kBlock;
            const int64_t len = (cols - j0) < kBlock ? (cols - j0) : kBlock;
            const F s = scale[r], inv_s = F(1) / s;
            const F* wb = w + r * cols + j0;
            F* gb = grad_w + r * cols + j0;
            const F gstep = inv_s * gscale;
            bad |= scale_grad ? penalty_block<F, E, R, true>(wb, len, s, gstep, bits, vbuf, gb, sbuf)
                              : penalty_block<F, E, R, false>(wb, len, s, gstep, bits, vbuf, gb, sbuf);
            double av[kLanes] = {0}, as[kLanes] = {0};
            int64_t j = 0;
            for (; j + kLanes <= len; j += kLanes)
#pragma omp simd
                for (int l = 0; l < kLanes; ++l) av[l] += double(vbuf[j + l]);
            for (int l = 0; j < len; ++j, ++l) av[l] += double(vbuf[j]);
            if (scale_grad) {
                j = 0;
                for (; j + kLanes <= len; j += kLanes)
#pragma omp simd
                    for (int l = 0; l < kLanes; ++l) as[l] += double(sbuf[j + l]);
                for (int l = 0; j < len; ++j, ++l) as[l] += double(sbuf[j]);
            }
            double sv = 0.0, ss = 0.0;
            for (int l = 0; l < kLanes; ++l) {
                sv += av[l];
                ss += as[l];
            }
            pv[task] = sv;
            ps[task] = ss;
        }
    }
    double total = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        double gs = 0.0;
        for (int64_t b = 0; b < bpr; ++b) {
            total += pv[r * bpr + b];
            gs += ps[r * bpr + b];
        }
        if (grad_scale) grad_scale[r] = scale_grad ? F(-gs / double(scale[r]) * value_scale) : F(0);
    }
    *value = total * value_scale;
    if (!bad) return -1;
    return first_not_finite(w, rows * cols);
}

template <class F>
int64_t penalty_rows_any(const F* w, int64_t rows, int64_t cols, F* scale, bool from_max, int bits,
                         Encoding e, Relaxation r, double value_scale, double* value, F* gw, F* gs,
                         int nt) {
#define HAMQ_ROWS_CASE(EV, RV)          \
    if (int(e) == EV && int(r) == RV)   \
        return relaxed_penalty_rows<F, EV, RV>(w, rows, cols, scale, from_max, bits, value_scale, value, gw, gs, nt);
    HAMQ_ROWS_CASE(0, 0) HAMQ_ROWS_CASE(1, 0) HAMQ_ROWS_CASE(2, 0) HAMQ_ROWS_CASE(3, 0)
    HAMQ_ROWS_CASE(0, 1) HAMQ_ROWS_CASE(1, 1) HAMQ_ROWS_CASE(2, 1) HAMQ_ROWS_CASE(3, 1)
#undef HAMQ_ROWS_CASE
    return -1;
}

int64_t penalty_rows_f32(const float* w, int64_t rows, int64_t cols, float* scale, bool from_max,
                         int bits, Encoding e, Relaxation r, double vs, double* v, float* gw, float* gs,
                         int nt) {
    return penalty_rows_any<float>(w, rows, cols, scale, from_max, bits, e, r, vs, v, gw, gs, nt);
}
int64_t penalty_rows_f64(const double* w, int64_t rows, int64_t cols, double* scale, bool from_max,
                         int bits, Encoding e, Relaxation r, double vs, double* v, double* gw,
                         double* gs, int nt) {
    return penalty_rows_any<double>(w, rows, cols, scale, from_max, bits, e, r, vs, v, gw, gs, nt);
}

template <class F>
int64_t relaxed_any(const F* x, int64_t n, int bits, Encoding e, Relaxation r, F* value, F* deriv,
                    int nt) {
#define HAMQ_RELAXED_CASE(EV, RV) \
    if (int(e) == EV && int(r) == RV) return relaxed_map<F, EV, RV>(x, n, bits, value, deriv, nt);
    HAMQ_RELAXED_CASE(0, 0) HAMQ_RELAXED_CASE(1, 0) HAMQ_RELAXED_CASE(2, 0) HAMQ_RELAXED_CASE(3, 0)
    HAMQ_RELAXED_CASE(0, 1) HAMQ_RELAXED_CASE(1, 1) HAMQ_RELAXED_CASE(2, 1) HAMQ_RELAXED_CASE(3, 1)
#undef HAMQ_RELAXED_CASE
    return -1;
}

int64_t relaxed_f32(const float* x, int64_t n, int bits, Encoding e, Relaxation r, float* v, float* d, int nt) {
    return relaxed_any<float>(x, n, bits, e, r, v, d, nt);
}
int64_t relaxed_f64(const double* x, int64_t n, int bits, Encoding e, Relaxation r, double* v, double* d, int nt) {
    return relaxed_any<double>(x, n, bits, e, r, v, d, nt);
}

// ---------------------------------------------------------------------------------------------
// Crossbar: binary GEMM reduced to energy terms and outputs (see crossbar_kernel.hpp)
// ---------------------------------------------------------------------------------------------

constexpr int64_t kXbarVectorsPerTask = 4;
constexpr int64_t kXbarColPlanesPerTask = 1024;

// counts[c] += popcount(xv & wrow[c]) for c < len: the binary-GEMM inner loop.
inline void and_popcount_accumulate(uint64_t xv, const uint64_t* wrow, uint32_t* counts, int64_t len) {
#ifdef HAMQ_HAVE_AVX512_INTRIN
    const __m512i vx = _mm512_set1_epi64(int64_t(xv));
    int64_t c = 0;
    for (; c + 16 <= len; c += 16) {
        const __m512i a = _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(wrow + c)));
        const __m512i b = _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(wrow + c + 8)));
        const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a)),
                                              _mm512_cvtepi64_epi32(b), 1);
        _mm512_storeu_si512(counts + c, _mm512_add_epi32(_mm512_loadu_si512(counts + c), ab));
    }
    for (; c < len; ++c) counts[c] += uint32_t(__builtin_popcountll(xv & wrow[c]));
#else
    for (int64_t c = 0; c < len; ++c) counts[c] += uint32_t(__builtin_popcountll(xv & wrow[c]));
#endif
}

// ln(u) for a normal u > 0, to ~1e-6: u = 2^e m, m in [1, 2), ln m = 2 atanh((m-1)/(m+1)) by its
// series. Plain arithmetic on the bits (no libm), so every tier computes the same value.
inline double fast_log(double u) {
    uint64_t bits;
    __builtin_memcpy(&bits, &u, sizeof bits);
    const double e = double(int64_t(bits >> 52) - 1023);
    bits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    double m;
    __builtin_memcpy(&m, &bits, sizeof m);
    const double t = (m - 1.0) / (m + 1.0), t2 = t * t;
    const double series = t * (2.0 + t2 * (2.0 / 3 + t2 * (2.0 / 5 + t2 * (2.0 / 7 + t2 * (2.0 / 9)))));
    return e * 0.69314718055994530942 + series;
}

// The energy-relevant sums of one (vector, pulse, row tile) over nc columns with nd driven rows.
template <int PC>
inline void column_sums(const uint32_t* cnt, int64_t nc, int nd, const XbarPopcountArgs& a,
                        double* g_lane, double* f_lane, double& gmax) {
    const double g0 = a.g_row * double(nd);
    const double sc = a.scale, em1 = a.exponent - 1.0;
    int64_t c = 0;
    double gm = gmax;
    for (; c + kLanes <= nc; c += kLanes) {
#pragma omp simd reduction(max : gm)
        for (int l = 0; l < kLanes; ++l) {
            double g = g0;
            for (int k = 0; k < PC; ++k) g += a.g_plane[k] * double(cnt[(c + l) * PC + k]);
            g_lane[l] += g;
            gm = g > gm ? g : gm;
            if (a.power_law) {
                const double u = sc * g;
                const double y = em1 * fast_log(u);
                f_lane[l] += u * (1.0 + y * (1.0 + y * (0.5 + y * (1.0 / 6))));
            }
        }
    }
    for (int l = 0; c < nc; ++c, ++l) {
        double g = g0;
        for (int k = 0; k < PC; ++k) g += a.g_plane[k] * double(cnt[c * PC + k]);
        g_lane[l] += g;
        gm = g > gm ? g : gm;
        if (a.power_law) {
            const double u = sc * g;
            const double y = em1 * fast_log(u);
            f_lane[l] += u * (1.0 + y * (1.0 + y * (0.5 + y * (1.0 / 6))));
        }
    }
    gmax = gm;
}

void xbar_popcount(const XbarPopcountArgs& a) {
    const int64_t N = a.n_vectors, G = a.n_groups;
    const int T = a.n_tiles, W = a.words_per_tile, P = a.a_planes, cb = a.cell_bits, PC = a.planes_per_col;
    const int64_t cpg = a.cols_per_group;
    const int64_t planes_per_group = cpg * PC;
    const int64_t ld = G * planes_per_group;  // weight row length (all column planes)
    int64_t groups_per_task = kXbarColPlanesPerTask / planes_per_group;
    if (groups_per_task < 1) groups_per_task = 1;
    const int64_t n_vtasks = (N + kXbarVectorsPerTask - 1) / kXbarVectorsPerTask;
    const int64_t n_gtasks = (G + groups_per_task - 1) / groups_per_task;
    const int64_t n_tasks = n_vtasks * n_gtasks;
    // Per-task partial results, reduced in task order below (deterministic).
    std::vector<double> task_g(static_cast<size_t>(n_tasks), 0.0), task_f(size_t(n_tasks), 0.0),
        task_gmax(size_t(n_tasks), 0.0);
    const int64_t work = N * G * planes_per_group * T * W * P;
    const int nt = work >= (1 << 16) ? a.n_threads : 1;

#pragma omp parallel num_threads(nt)
    {
        const int64_t max_cols = groups_per_task * cpg;
        std::vector<uint32_t> counts(static_cast<size_t>(max_cols * PC));
        std::vector<uint32_t> sums(static_cast<size_t>(max_cols));     // digit sum S of each column
        std::vector<double> colacc(static_cast<size_t>(max_cols));     // shift-added ADC readings per column
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; ++task) {
            const int64_t vt = task / n_gtasks, gt = task % n_gtasks;
            const int64_t n0 = vt * kXbarVectorsPerTask;
            const int64_t n1 = (n0 + kXbarVectorsPerTask) < N ? n0 + kXbarVectorsPerTask : N;
            const int64_t g0 = gt * groups_per_task;
            const int64_t g1 = (g0 + groups_per_task) < G ? g0 + groups_per_task : G;
            const int64_t ng = g1 - g0, np = ng * planes_per_group, nc = ng * cpg;
            const int64_t p0 = g0 * planes_per_group;
            // Sums in kLanes fixed lanes (vectorisable, the same order on every tier).
            double g_lane[kLanes] = {0}, f_lane[kLanes] = {0};
            double gmax = 0.0;
            for (int64_t n = n0; n < n1; ++n) {
                for (int64_t c = 0; c < nc; ++c) colacc[size_t(c)] = 0.0;
                for (int t = 0; t < T; ++t) {
                    for (int p = 0; p < P; ++p) {
                        const uint64_t* xw = a.x + ((n * T + t) * P + p) * W;
                        int nd = 0;
                        for (int w = 0; w < W; ++w) nd += __builtin_popcountll(xw[w]);
                        for (int64_t c = 0; c < np; ++c) counts[size_t(c)] = 0;
                        if (nd > 0)
                            for (int w = 0; w < W; ++w)
                                if (xw[w])
                                    and_popcount_accumulate(xw[w], a.w + (int64_t(t) * W + w) * ld + p0,
                                                            counts.data(), np);
                        for (int64_t c = 0; c < nc; ++c) {
                            uint32_t v = 0;
                            for (int j = 0; j < cb; ++j) v += counts[size_t(c * PC + j)] << j;
                            sums[size_t(c)] = v;
                        }
                        const double pc = a.plane_coef[p];
                        if (a.adc_level) {
#pragma omp simd
                            for (int64_t i = 0; i < nc; ++i) colacc[size_t(i)] += pc * a.adc_level[sums[size_t(i)]];
                        } else {
#pragma omp simd
                            for (int64_t i = 0; i < nc; ++i) colacc[size_t(i)] += pc * double(sums[size_t(i)]);
                        }
                        if (nd == 0) continue;  // an idle read: G = 0 in every column
                        switch (PC) {
                            case 1: column_sums<1>(counts.data(), nc, nd, a, g_lane, f_lane, gmax); break;
                            case 2: column_sums<2>(counts.data(), nc, nd, a, g_lane, f_lane, gmax); break;
                            case 3: column_sums<3>(counts.data(), nc, nd, a, g_lane, f_lane, gmax); break;
                            default: column_sums<4>(counts.data(), nc, nd, a, g_lane, f_lane, gmax); break;
                        }
                        // Extra physical copies of a group (offset reference columns, one per
                        // array): the same conversions again.
                        for (int64_t g = 0; g < ng; ++g) {
                            const int64_t extra = a.group_mult[g0 + g] - 1;
                            if (extra <= 0) continue;
                            double xg[kLanes] = {0}, xf[kLanes] = {0};
                            switch (PC) {
                                case 1: column_sums<1>(counts.data() + g * cpg * PC, cpg, nd, a, xg, xf, gmax); break;
                                case 2: column_sums<2>(counts.data() + g * cpg * PC, cpg, nd, a, xg, xf, gmax); break;
                                case 3: column_sums<3>(counts.data() + g * cpg * PC, cpg, nd, a, xg, xf, gmax); break;
                                default: column_sums<4>(counts.data() + g * cpg * PC, cpg, nd, a, xg, xf, gmax); break;
                            }
                            for (int l = 0; l < kLanes; ++l) {
                                g_lane[l] += double(extra) * xg[l];
                                f_lane[l] += double(extra) * xf[l];
                            }
                        }
                    }
                }
                double* yrow = a.y + n * G;
                for (int64_t g = 0; g < ng; ++g) {
                    double acc = 0.0;
                    for (int64_t cc = 0; cc < cpg; ++cc) acc += a.col_coef[cc] * colacc[size_t(g * cpg + cc)];
                    yrow[g0 + g] = acc;
                }
            }
            double sg = 0.0, sf = 0.0;
            for (int l = 0; l < kLanes; ++l) {
                sg += g_lane[l];
                sf += f_lane[l];
            }
            task_g[size_t(task)] = sg;
            task_f[size_t(task)] = sf;
            task_gmax[size_t(task)] = gmax;
        }
    }
    double sg = 0.0, sf = 0.0, gmax = 0.0;
    for (int64_t task = 0; task < n_tasks; ++task) {
        sg += task_g[size_t(task)];
        sf += task_f[size_t(task)];
        gmax = task_gmax[size_t(task)] > gmax ? task_gmax[size_t(task)] : gmax;
    }
    *a.g_sum = sg;
    *a.g_max = gmax;
    if (a.f_sum) *a.f_sum = sf;
}

void transpose_bits(const uint16_t* codes, int nbits, uint64_t* planes) {
#ifdef HAMQ_HAVE_AVX512_INTRIN
    const __m512i lo = _mm512_loadu_si512(codes), hi = _mm512_loadu_si512(codes + 32);
    for (int b = 0; b < nbits; ++b) {
        const __m512i m = _mm512_set1_epi16(short(1 << b));
        planes[b] = uint64_t(_mm512_test_epi16_mask(lo, m)) | (uint64_t(_mm512_test_epi16_mask(hi, m)) << 32);
    }
#else
    for (int b = 0; b < nbits; ++b) {
        uint64_t word = 0;
        for (int r = 0; r < 64; ++r) word |= uint64_t((codes[r] >> b) & 1u) << r;
        planes[b] = word;
    }
#endif
}

}  // namespace

const KernelTable* make_table(const char* name) {
    static const KernelTable table = {name,        hw_map,      hw_total,    hw_hist,
                                      relaxed_f32, relaxed_f64,
                                      penalty_rows_f32, penalty_rows_f64, xbar_popcount,
                                      transpose_bits};
    return &table;
}

}  // namespace HAMQ_ISA_NS
}  // namespace hamq
