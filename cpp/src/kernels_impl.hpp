// The hot kernels, written once and compiled once per instruction-set tier: isa_baseline.cpp,
// isa_avx2.cpp and isa_avx512.cpp define HAMQ_ISA_NS and include this file with their own compiler
// flags. Everything lives in an anonymous namespace (internal linkage), so no symbol compiled for a
// wider ISA can be picked up by the linker for a narrower one; only make_table() is exported.
//
// Loops are written so the compiler vectorises them (fixed lane counts, no data-dependent
// branches); the AVX-512 BITALG int8 path for Hamming weights is written with intrinsics because
// it must run at memory bandwidth.
#include <cstdint>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>
#include "hamqcore/encoding.hpp"
#include "cost_table.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

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
        int64_t h[kMaxBits + 2] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx)
        {
            // slot kMaxBits + 1 takes every value whose popcount exceeds any valid HW (an out-of-range
            // int32/int64 can have up to 64 one-bits): counted safely, then reported by the range check
            int64_t local[kMaxBits + 2] = {0};
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; ++i) {
                const S s = S(q[i]);
                mn = s < mn ? s : mn;
                mx = s > mx ? s : mx;
                const unsigned hw = hw_elem<T, E>(q[i], mask, half);
                local[hw > unsigned(kMaxBits) ? kMaxBits + 1 : hw] += 1;
            }
#pragma omp critical
            for (int b = 0; b <= kMaxBits + 1; ++b) h[b] += local[b];
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

// Value and derivative of the relaxed level cost at x (see relaxed.hpp for the definition); cost(k)
// is the integer level's cost: its HW, or a per-level table lookup (BitCost).
template <class F, int R, class Cost>
inline void relaxed_eval(F x, int bits, const Cost& cost, F& value, F& deriv) {
    const int32_t hi = int32_t(level_max(bits)), lo = -hi;
    const F flo = F(lo), fhi = F(hi);
    const F xl = x < flo ? flo : x;  // two unconditional compares (vectorisable)
    const F xc = xl > fhi ? fhi : xl;
    F kf = __builtin_floor(xc);
    kf = kf > fhi - F(1) ? fhi - F(1) : kf;  // so that k + 1 <= hi; x == hi gives f == 1
    kf = kf == kf ? kf : F(0);                // NaN input: keep the lookups in range (flagged)
    const int32_t k = int32_t(kf);
    const F f = xc - kf;
    const F t0 = cost(k);
    const F t1 = cost(k + 1);
    const F dr = t1 - t0;
    const bool outside = (x < flo) | (x > fhi);
    if constexpr (R == int(Relaxation::Linear)) {
        value = t0 + f * dr;
        const F tm = cost(k > lo ? k - 1 : lo);
        const F left = t0 - tm;  // 0 at the lower bound, where tm = t0
        F d = f == F(0) ? F(0.5) * (left + dr) : dr;
        d = x == fhi ? F(0.5) * dr : d;
        deriv = outside ? F(0) : d;
    } else {
        const F pi = F(3.14159265358979323846);
        value = t0 + dr * (F(1) - F(__builtin_cos(double(pi * f)))) * F(0.5);
        const F d = dr * pi * F(0.5) * F(__builtin_sin(double(pi * f)));
        deriv = (outside | (x == fhi) | (f == F(0))) ? F(0) : d;
    }
}

template <class F, int E, int R>
inline void relaxed_point(F x, int bits, F& value, F& deriv) {
    const uint32_t mask = (uint32_t(1) << bits) - 1, half = uint32_t(1) << (bits - 1);
    relaxed_eval<F, R>(x, bits, [&](int32_t k) { return F(hw_int<E>(k, mask, half)); }, value, deriv);
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
// With a cost table (index k + hi) the level cost is looked up instead of the encoding's HW.
template <class F, int E, int R, bool SGRAD, bool TABLE>
inline int penalty_block(const F* wb, int64_t len, F s, F gstep, int bits, const F* table, F* vbuf, F* gb,
                         F* sbuf) {
    int bad = 0;
    const int32_t hi = int32_t(level_max(bits));
#pragma omp simd reduction(| : bad)
    for (int64_t j = 0; j < len; ++j) {
        bad |= int(not_finite(wb[j]));
        const F x = wb[j] / s;
        F d;
        if constexpr (TABLE)
            relaxed_eval<F, R>(x, bits, [&](int32_t k) { return table[k + hi]; }, vbuf[j], d);
        else
            relaxed_point<F, E, R>(x, bits, vbuf[j], d);
        gb[j] = d * gstep;
        if constexpr (SGRAD) sbuf[j] = d * x;  // -d/ds = d w / s^2 = d x / s (1/s applied once later)
    }
    return bad;
}

template <class F, int E, int R>
int64_t relaxed_penalty_rows(const F* w, int64_t rows, int64_t cols, F* scale, bool from_max,
                             int bits, double value_scale, double* value, F* grad_w, F* grad_scale,
                             int n_threads, BitCost bit_cost) {
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
    const bool table_mode = bit_cost.cost != nullptr;
    const size_t levels = size_t(2 * level_max(bits) + 1);
    std::vector<F> shared_table;  // one table for every row, built once
    if (table_mode && !bit_cost.per_row) {
        std::vector<double> code_cost;
        shared_table.resize(levels);
        build_cost_table(bit_cost.cost, bits, Encoding(E), code_cost, shared_table.data());
    }
    int bad = 0;
    const int nt = threads_for(rows * cols, n_threads);
#pragma omp parallel num_threads(nt) reduction(| : bad)
    {
        std::vector<F> vbuf_store(static_cast<size_t>(kBlock)), sbuf_store(static_cast<size_t>(kBlock));
        F* vbuf = vbuf_store.data();
        F* sbuf = sbuf_store.data();
        std::vector<F> row_table(table_mode && bit_cost.per_row ? levels : 0);
        std::vector<double> code_cost;
        int64_t table_row = -1;  // the row whose per-row table is in row_table
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntask; ++task) {
            const int64_t r = task / bpr, j0 = (task % bpr) * kBlock;
            const int64_t len = (cols - j0) < kBlock ? (cols - j0) : kBlock;
            const F s = scale[r], inv_s = F(1) / s;
            const F* wb = w + r * cols + j0;
            F* gb = grad_w + r * cols + j0;
            const F gstep = inv_s * gscale;
            const F* table = shared_table.data();
            if (table_mode && bit_cost.per_row) {
                if (table_row != r) {
                    build_cost_table(bit_cost.cost + r * bits, bits, Encoding(E), code_cost, row_table.data());
                    table_row = r;
                }
                table = row_table.data();
            }
            if (table_mode)
                bad |= scale_grad ? penalty_block<F, E, R, true, true>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf)
                                  : penalty_block<F, E, R, false, true>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf);
            else
                bad |= scale_grad ? penalty_block<F, E, R, true, false>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf)
                                  : penalty_block<F, E, R, false, false>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf);
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
                         int nt, BitCost bc) {
#define HAMQ_ROWS_CASE(EV, RV)          \
    if (int(e) == EV && int(r) == RV)   \
        return relaxed_penalty_rows<F, EV, RV>(w, rows, cols, scale, from_max, bits, value_scale, value, gw, gs, nt, bc);
    HAMQ_ROWS_CASE(0, 0) HAMQ_ROWS_CASE(1, 0) HAMQ_ROWS_CASE(2, 0) HAMQ_ROWS_CASE(3, 0)
    HAMQ_ROWS_CASE(0, 1) HAMQ_ROWS_CASE(1, 1) HAMQ_ROWS_CASE(2, 1) HAMQ_ROWS_CASE(3, 1)
#undef HAMQ_ROWS_CASE
    return -1;
}

int64_t penalty_rows_f32(const float* w, int64_t rows, int64_t cols, float* scale, bool from_max,
                         int bits, Encoding e, Relaxation r, double vs, double* v, float* gw, float* gs,
                         int nt, BitCost bc) {
    return penalty_rows_any<float>(w, rows, cols, scale, from_max, bits, e, r, vs, v, gw, gs, nt, bc);
}
int64_t penalty_rows_f64(const double* w, int64_t rows, int64_t cols, double* scale, bool from_max,
                         int bits, Encoding e, Relaxation r, double vs, double* v, double* gw,
                         double* gs, int nt, BitCost bc) {
    return penalty_rows_any<double>(w, rows, cols, scale, from_max, bits, e, r, vs, v, gw, gs, nt, bc);
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

// counts[c] = sum over the nw words j of popcount(xs[j] & rows[j][c]), c < len: the binary-GEMM
// inner loop (xs: the nonzero input words of a tile, rows: the matching weight-plane rows).
inline void and_popcount_tile(const uint64_t* xs, const uint64_t* const* rows, int nw, uint32_t* counts,
                              int64_t len) {
    int64_t c = 0;
#ifdef HAMQ_HAVE_AVX512_INTRIN
    for (; c + 16 <= len; c += 16) {
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        for (int j = 0; j < nw; ++j) {
            const __m512i vx = _mm512_set1_epi64(int64_t(xs[j]));
            a = _mm512_add_epi64(a, _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(rows[j] + c))));
            b = _mm512_add_epi64(b, _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(rows[j] + c + 8))));
        }
        const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a)),
                                              _mm512_cvtepi64_epi32(b), 1);
        _mm512_storeu_si512(counts + c, ab);
    }
#endif
    for (; c < len; ++c) {
        uint32_t v = 0;
        for (int j = 0; j < nw; ++j) v += uint32_t(__builtin_popcountll(xs[j] & rows[j][c]));
        counts[c] = v;
    }
}

// The same for 2-bit cells over both planes at once: counts of x & w0, x & w1 and x & w0 & w1 (the
// last, with the first two, gives the count of every digit value), without storing the AND plane.
inline void and_popcount_tile2(const uint64_t* xs, const uint64_t* const* rows0, const uint64_t* const* rows1, int nw,
                               uint32_t* c0, uint32_t* c1, uint32_t* c01, int64_t len) {
    int64_t c = 0;
#ifdef HAMQ_HAVE_AVX512_INTRIN
    for (; c + 8 <= len; c += 8) {
        __m512i a = _mm512_setzero_si512(), bb = _mm512_setzero_si512(), ab = _mm512_setzero_si512();
        for (int j = 0; j < nw; ++j) {
            const __m512i vx = _mm512_set1_epi64(int64_t(xs[j]));
            const __m512i x0 = _mm512_and_si512(vx, _mm512_loadu_si512(rows0[j] + c));
            const __m512i w1 = _mm512_loadu_si512(rows1[j] + c);
            a = _mm512_add_epi64(a, _mm512_popcnt_epi64(x0));
            bb = _mm512_add_epi64(bb, _mm512_popcnt_epi64(_mm512_and_si512(vx, w1)));
            ab = _mm512_add_epi64(ab, _mm512_popcnt_epi64(_mm512_and_si512(x0, w1)));
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c0 + c), _mm512_cvtepi64_epi32(a));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c1 + c), _mm512_cvtepi64_epi32(bb));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c01 + c), _mm512_cvtepi64_epi32(ab));
    }
#endif
    for (; c < len; ++c) {
        uint32_t v0 = 0, v1 = 0, v01 = 0;
        for (int j = 0; j < nw; ++j) {
            const uint64_t x0 = xs[j] & rows0[j][c], w1 = rows1[j][c];
            v0 += uint32_t(__builtin_popcountll(x0));
            v1 += uint32_t(__builtin_popcountll(xs[j] & w1));
            v01 += uint32_t(__builtin_popcountll(x0 & w1));
        }
        c0[c] = v0;
        c1[c] = v1;
        c01[c] = v01;
    }
}

// ln(u) for a normal u > 0, to 2.2e-5 + rounding: u = 2^e m, m in [1, 2), ln m by a degree-5
// Chebyshev fit of ln(1 + t) on [0, 1] (no division, no libm: every tier computes the same value).
// The sense amp's (s G)^k uses it as exp((k-1) ln(s G)) with |k-1| < 0.004: below 1e-7 of the energy.
inline float fast_logf(float u) {
    uint32_t bits;
    __builtin_memcpy(&bits, &u, sizeof bits);
    const float e = float(int32_t(bits >> 23) - 127);
    bits = (bits & 0x007FFFFFu) | 0x3F800000u;
    float m;
    __builtin_memcpy(&m, &bits, sizeof m);
    const float t = m - 1.0f;
    const float ln_m = 2.21170312e-05f + t * (9.99010447e-01f + t * (-4.89156847e-01f + t * (2.83304325e-01f +
                       t * (-1.30119415e-01f + t * 3.01026250e-02f))));
    return e * 0.693147181f + ln_m;
}

// The conductance sums of one (vector, pulse, row tile) over columns [c0, c1) with nd driven rows:
// plane k's counts are cnt[k * stride + c]. G0 = g_row nd + sum_k g_plane[k] count_k per column is
// summed (and, with POWER, f = (s G0)^k = s G0 exp((k-1) ln(s G0)), in single precision). Lanes are
// fixed (lane = column offset mod kLanes from c0), so every sum's order is the same on every tier.
template <int PC, bool POWER>
inline void column_sums(const uint32_t* cnt, int64_t stride, int64_t c0, int64_t c1, int nd,
                        const XbarPopcountArgs& a, const float* weight, double* g_lane, double* f_lane,
                        double& gmax) {
    if constexpr (POWER) {
        // single precision, summed per lane within this call (~nc / 16 terms), then added in double
        const float g0 = float(a.g_row * double(nd)), sc = float(a.scale), em1 = float(a.exponent - 1.0);
        float gp[PC];
        for (int k = 0; k < PC; ++k) gp[k] = float(a.g_plane[k]);
        float gm = float(gmax), gl[kLanes] = {0}, fl[kLanes] = {0};
        int64_t c = c0;
        auto term = [&](int64_t col, int l) {
            float g = g0;
            for (int k = 0; k < PC; ++k) g += gp[k] * float(cnt[k * stride + col]);
            const float wt = weight ? weight[col] : 1.0f;
            g = wt != 0.0f ? g : 0.0f;  // a column that is not converted draws no current
            gl[l] += g;
            const float u = sc * g;
            const float y = em1 * fast_logf(u);
            const float f = u * (1.0f + y * (1.0f + y * (0.5f + y * (1.0f / 6))));
            fl[l] += wt != 0.0f ? wt * f : 0.0f;
            return g;
        };
        for (; c + kLanes <= c1; c += kLanes) {
#pragma omp simd reduction(max : gm)
            for (int l = 0; l < kLanes; ++l) {
                const float g = term(c + l, l);
                gm = g > gm ? g : gm;
            }
        }
        for (int l = 0; c < c1; ++c, ++l) {
            const float g = term(c, l);
            gm = g > gm ? g : gm;
        }
        for (int l = 0; l < kLanes; ++l) {
            g_lane[l] += double(gl[l]);
            f_lane[l] += double(fl[l]);
        }
        gmax = double(gm);
    } else {
        const double g0 = a.g_row * double(nd);
        double gp[PC];
        for (int k = 0; k < PC; ++k) gp[k] = a.g_plane[k];
        double gm = gmax;
        int64_t c = c0;
        for (; c + kLanes <= c1; c += kLanes) {
#pragma omp simd reduction(max : gm)
            for (int l = 0; l < kLanes; ++l) {
                double g = g0;
                for (int k = 0; k < PC; ++k) g += gp[k] * double(cnt[k * stride + c + l]);
                g = (weight && weight[c + l] == 0.0f) ? 0.0 : g;  // not converted: no current
                g_lane[l] += g;
                gm = g > gm ? g : gm;
            }
        }
        for (int l = 0; c < c1; ++c, ++l) {
            double g = g0;
            for (int k = 0; k < PC; ++k) g += gp[k] * double(cnt[k * stride + c]);
            g = (weight && weight[c] == 0.0f) ? 0.0 : g;
            g_lane[l] += g;
            gm = g > gm ? g : gm;
        }
        gmax = gm;
    }
}

template <int PC, bool POWER>
void xbar_popcount_impl(const XbarPopcountArgs& a) {
    const int64_t N = a.n_vectors, G = a.n_groups;
    const int T = a.n_tiles, W = a.words_per_tile, P = a.a_planes;
    constexpr int CB = PC == 3 ? 2 : PC;       // bits per cell (the third count of 2-bit cells is their AND)
    const int64_t cpg = a.cols_per_group;
    const int64_t ncols = G * cpg;             // columns of every group
    const int64_t ld = ncols * CB;             // weight row length: [CB][ncols]
    int64_t groups_per_task = kXbarColPlanesPerTask / (cpg * PC);
    if (groups_per_task < 1) groups_per_task = 1;
    const int64_t n_vtasks = (N + kXbarVectorsPerTask - 1) / kXbarVectorsPerTask;
    const int64_t n_gtasks = (G + groups_per_task - 1) / groups_per_task;
    const int64_t n_tasks = n_vtasks * n_gtasks;
    // Per-task partial results, reduced in task order below (deterministic).
    std::vector<double> task_g(static_cast<size_t>(n_tasks), 0.0), task_f(size_t(n_tasks), 0.0),
        task_gmax(size_t(n_tasks), 0.0);
    const int64_t work = N * ld * T * W * P;
    const int nt = threads_for(work / 2, a.n_threads);

#pragma omp parallel num_threads(nt)
    {
        const int64_t max_cols = groups_per_task * cpg;
        std::vector<uint32_t> counts(static_cast<size_t>(max_cols * PC));  // [PC][task columns]
        std::vector<uint32_t> sums(static_cast<size_t>(max_cols));         // digit sum S of each column
        std::vector<double> colacc(static_cast<size_t>(max_cols));         // shift-added ADC readings
        std::vector<uint64_t> xs(static_cast<size_t>(W));                   // nonzero input words
        std::vector<int> words(static_cast<size_t>(W));
        std::vector<const uint64_t*> rows(static_cast<size_t>(W)), rows1(static_cast<size_t>(W));
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; ++task) {
            const int64_t vt = task / n_gtasks, gt = task % n_gtasks;
            const int64_t n0 = vt * kXbarVectorsPerTask;
            const int64_t n1 = (n0 + kXbarVectorsPerTask) < N ? n0 + kXbarVectorsPerTask : N;
            const int64_t g0 = gt * groups_per_task;
            const int64_t g1 = (g0 + groups_per_task) < G ? g0 + groups_per_task : G;
            const int64_t ng = g1 - g0, nc = ng * cpg, col0 = g0 * cpg;
            uint32_t* cnt = counts.data();
            // Sums in kLanes fixed lanes (vectorisable, the same order on every tier).
            double g_lane[kLanes] = {0}, f_lane[kLanes] = {0};
            double gmax = 0.0;
            for (int64_t n = n0; n < n1; ++n) {
                if (a.y)
                    for (int64_t c = 0; c < nc; ++c) colacc[size_t(c)] = 0.0;
                for (int t = 0; t < T; ++t) {
                    for (int p = 0; p < P; ++p) {
                        const uint64_t* xw = a.x + ((n * T + t) * P + p) * W;
                        int nd = 0, nw = 0;
                        for (int w = 0; w < W; ++w) {
                            nd += __builtin_popcountll(xw[w]);
                            if (xw[w]) {
                                xs[size_t(nw)] = xw[w];
                                words[size_t(nw++)] = w;
                            }
                        }
                        if constexpr (PC == 3) {
                            for (int j = 0; j < nw; ++j) {
                                rows[size_t(j)] = a.w + (int64_t(t) * W + words[size_t(j)]) * ld + col0;
                                rows1[size_t(j)] = rows[size_t(j)] + ncols;
                            }
                            and_popcount_tile2(xs.data(), rows.data(), rows1.data(), nw, cnt, cnt + nc, cnt + 2 * nc, nc);
                        } else {
                            for (int k = 0; k < PC; ++k) {
                                for (int j = 0; j < nw; ++j)
                                    rows[size_t(j)] = a.w + (int64_t(t) * W + words[size_t(j)]) * ld + k * ncols + col0;
                                and_popcount_tile(xs.data(), rows.data(), nw, cnt + k * nc, nc);
                            }
                        }
                        if (a.y) {  // the readings: digit sums through the ADC, shift-added
                            const double pc = a.plane_coef[p];
#pragma omp simd
                            for (int64_t c = 0; c < nc; ++c) {
                                uint32_t v = 0;
                                for (int j = 0; j < CB; ++j) v += cnt[j * nc + c] << j;
                                sums[size_t(c)] = v;
                            }
                            if (a.col_step || a.col_inverted) {  // per-column ADC, complemented columns
                                const int64_t base = int64_t(t) * ncols + col0;
                                for (int64_t c = 0; c < nc; ++c) {
                                    double v = double(sums[size_t(c)]);
                                    if (a.col_step && a.col_step[base + c] > 0) {  // as crossbar.cpp adc_reading
                                        const double step = a.col_step[base + c];
                                        const double lv = __builtin_nearbyint(v / step);
                                        v = step * (lv < a.col_lmax[base + c] ? lv : a.col_lmax[base + c]);
                                    }
                                    if (a.col_inverted && a.col_inverted[base + c]) v = double(nd) * a.cell_max - v;
                                    colacc[size_t(c)] += pc * v;
                                }
                            } else if (a.adc_level) {
#pragma omp simd
                                for (int64_t c = 0; c < nc; ++c) colacc[size_t(c)] += pc * a.adc_level[sums[size_t(c)]];
                            } else {
#pragma omp simd
                                for (int64_t c = 0; c < nc; ++c) colacc[size_t(c)] += pc * double(sums[size_t(c)]);
                            }
                        }
                        if (nd == 0) continue;  // an idle read: G = 0 in every column
                        const float* cw = a.conv_weight ? a.conv_weight + int64_t(t) * ncols + col0 : nullptr;
                        column_sums<PC, POWER>(cnt, nc, 0, nc, nd, a, cw, g_lane, f_lane, gmax);
                        // Extra physical copies of a group (offset reference columns, one per
                        // array): the same conversions again.
                        for (int64_t g = 0; g < ng; ++g) {
                            const int64_t extra = a.group_mult[g0 + g] - 1;
                            if (extra <= 0) continue;
                            double xg[kLanes] = {0}, xf[kLanes] = {0};
                            column_sums<PC, POWER>(cnt, nc, g * cpg, (g + 1) * cpg, nd, a, cw, xg, xf, gmax);
                            for (int l = 0; l < kLanes; ++l) {
                                g_lane[l] += double(extra) * xg[l];
                                f_lane[l] += double(extra) * xf[l];
                            }
                        }
                    }
                }
                double* yrow = a.y ? a.y + n * G : nullptr;
                for (int64_t g = 0; yrow && g < ng; ++g) {
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

void xbar_popcount(const XbarPopcountArgs& a) {
    switch (a.planes_per_col * 2 + (a.power_law ? 1 : 0)) {
        case 2: return xbar_popcount_impl<1, false>(a);
        case 3: return xbar_popcount_impl<1, true>(a);
        case 6: return xbar_popcount_impl<3, false>(a);
        case 7: return xbar_popcount_impl<3, true>(a);
        case 8: return xbar_popcount_impl<4, false>(a);
        case 9: return xbar_popcount_impl<4, true>(a);
        default: return xbar_popcount_impl<2, false>(a);  // not produced by crossbar.cpp
    }
}

double xbar_deviation(const uint8_t* digit, const float* drive, const float* r_row, int64_t n,
                      const float* inv_g, const float* g_model, const float* r_model, float r, double* model) {
    // G - G_model = G G_model (R_model - R) with R = 1/G_device + r + r_row the cell's series
    // resistance and R_model the one the model's conductance implies: no cancellation between two
    // nearly equal conductances, so single precision keeps ~1e-7 of the (small) deviation itself.
    float dev[kLanes] = {0}, mod[kLanes] = {0};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
            const uint8_t d = digit[i + l];
            const float gm = g_model[d], rs = r + r_row[i + l];
            dev[l] += drive[i + l] * (gm / (inv_g[d] + rs) * ((r_model[d] - r) - r_row[i + l]));
            mod[l] += drive[i + l] * gm;
        }
    for (int l = 0; i < n; ++i, ++l) {
        const uint8_t d = digit[i];
        const float gm = g_model[d], rs = r + r_row[i];
        dev[l] += drive[i] * (gm / (inv_g[d] + rs) * ((r_model[d] - r) - r_row[i]));
        mod[l] += drive[i] * gm;
    }
    double sd = 0.0, sm = 0.0;
    for (int l = 0; l < kLanes; ++l) {
        sd += double(dev[l]);
        sm += double(mod[l]);
    }
    *model = sm;
    return sd;
}

// sum_p a[p] b[p] over p < n in 32 partial sums, combined in a fixed order: the same bits on every
// tier (no FMA contraction) and thread count; 32 lanes keep four AVX-512 add chains in flight.
inline double dot_fixed(const double* a, const double* b, int64_t n) {
    constexpr int L = 32;
    double acc[L] = {};
    int64_t p = 0;
    for (; p + L <= n; p += L)
#pragma omp simd
        for (int l = 0; l < L; ++l) acc[l] += a[p + l] * b[p + l];
    for (int l = 0; p < n; ++p, ++l) acc[l] += a[p] * b[p];
    for (int w = L / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}

constexpr int64_t kFactorBlock = 8;  // rows (columns) sharing each streamed row of the factor

// The upper factor U of B^-1 after the input order is reversed (rounding.cpp): b (k x k, row-major,
// symmetric positive definite) is overwritten by its lower Cholesky factor R, then U[a][c] =
// R^-1[k-1-a][k-1-c]. Cholesky-Banachiewicz (every entry a dot product over contiguous memory) in
// blocks of kFactorBlock rows, so each earlier row is read once per block instead of once per row;
// R^-1 by forward substitution, kFactorBlock columns per task, tasks in parallel. Blocking does not
// change any entry's arithmetic. Returns false when a pivot is not > 0.
bool factor_upper(double* b, int64_t k, double* u, int n_threads) {
    for (int64_t i0 = 0; i0 < k; i0 += kFactorBlock) {
        const int64_t i1 = std::min(k, i0 + kFactorBlock);
        for (int64_t j = 0; j < i1; ++j) {
            double* aj = b + j * k;
            if (j >= i0) {  // row j's off-diagonal entries are done: its pivot
                const double d = aj[j] - dot_fixed(aj, aj, j);
                if (!(d > 0.0) || !std::isfinite(d)) return false;
                aj[j] = std::sqrt(d);
            }
            for (int64_t i = std::max(i0, j + 1); i < i1; ++i) {
                double* ai = b + i * k;
                ai[j] = (ai[j] - dot_fixed(ai, aj, j)) / aj[j];
            }
        }
    }
    std::vector<double> rinv_t(static_cast<size_t>(k * k), 0.0);  // row c: column c of R^-1
    const int64_t tasks = (k + kFactorBlock - 1) / kFactorBlock;
#pragma omp parallel for num_threads(threads_for(k * k * k, n_threads)) schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
        const int64_t c0 = t * kFactorBlock, c1 = std::min(k, c0 + kFactorBlock);
        for (int64_t i = c0; i < k; ++i) {
            const double* ri = b + i * k;
            for (int64_t c = c0; c < c1 && c <= i; ++c) {
                double* y = rinv_t.data() + c * k;
                y[i] = c == i ? 1.0 / ri[i] : -dot_fixed(ri + c, y + c, i - c) / ri[i];
            }
        }
    }
    for (int64_t a = 0; a < k; ++a)
        for (int64_t c = 0; c < k; ++c)
            u[a * k + c] = c < a ? 0.0 : rinv_t[size_t((k - 1 - c) * k + (k - 1 - a))];
    return true;
}

// HW-aware rounding (rounding.hpp): rows are independent, each fixed serially in input order; the
// error feedback x_j -= err u_ij is the hot loop (vectorised; no FMA contraction, so every tier gives
// the same bits).
void round_rows(const RoundRowsArgs& a) {
    const int32_t hi = int32_t(level_max(a.bits));
    const int64_t k = a.k;
#pragma omp parallel num_threads(threads_for(a.rows * k * k, a.n_threads))
    {
        std::vector<double> xs(static_cast<size_t>(k));
        double* x = xs.data();
#pragma omp for schedule(dynamic, 1)
        for (int64_t o = 0; o < a.rows; ++o) {
            const double s = a.scale[o], rs2 = a.row_weight[o] * s * s;
            for (int64_t j = 0; j < k; ++j) x[j] = a.w[o * k + j] / s;
            int32_t* qo = a.q + o * k;
            for (int64_t i = 0; i < k; ++i) {
                const double* ui = a.u + i * k;
                const double d = ui[i], xi = x[i];
                const double wgt = rs2 / (d * d);
                double r = std::nearbyint(xi);
                r = r < -hi ? -hi : (r > hi ? hi : r);
                const int32_t n = int32_t(r);
                int32_t best = n;
                double bestv = (xi - n) * (xi - n) * wgt + a.lam * a.table[n + hi];
                const int32_t q0 = n - a.radius < -hi ? -hi : n - a.radius;
                const int32_t q1 = n + a.radius > hi ? hi : n + a.radius;
                for (int32_t c = q0; c <= q1; ++c) {
                    if (c == n) continue;
                    const double v = (xi - c) * (xi - c) * wgt + a.lam * a.table[c + hi];
                    if (v < bestv) {
                        bestv = v;
                        best = c;
                    }
                }
                qo[i] = best;
                const double err = (xi - best) / d;
#pragma omp simd
                for (int64_t j = i + 1; j < k; ++j) x[j] -= err * ui[j];
            }
        }
    }
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
                                      xbar_deviation, transpose_bits, factor_upper, round_rows};
    return &table;
}

}  // namespace HAMQ_ISA_NS
}  // namespace hamq
