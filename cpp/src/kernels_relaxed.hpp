// Included by kernels_impl.hpp only, inside its per-ISA anonymous namespace (compiled once per tier).
// The relaxed Hamming weight and the fused, row-scaled penalty with its gradients.
#pragma once
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

// Outputs at least this large are streamed (store_scaled): they would not stay in cache for their reader.
constexpr int64_t kStreamBytes = int64_t(8) << 20;

// out[j] = in[j] * c. With `stream`, where the tier has them, non-temporal stores: a large output (a
// gradient as large as the weights) is not read back soon, and streaming it skips the
// read-for-ownership of its lines. The caller fences (stream_fence) before other threads read it.
template <class F>
inline void store_scaled(const F* in, int64_t n, F c, F* out, bool stream) {
    int64_t j = 0;
#if defined(__AVX__)
#if defined(__AVX512F__)
    constexpr int64_t kBytes = 64;
#else
    constexpr int64_t kBytes = 32;
#endif
    constexpr int64_t W = kBytes / int64_t(sizeof(F));
    const auto addr = reinterpret_cast<uintptr_t>(out);
    if (stream && addr % sizeof(F) == 0) {
        // scalar stores up to a vector boundary, then whole aligned vectors
        for (const int64_t head = int64_t((kBytes - addr % kBytes) % kBytes) / int64_t(sizeof(F)); j < head && j < n; ++j)
            out[j] = in[j] * c;
        for (; j + W <= n; j += W) {
            if constexpr (sizeof(F) == 4) {
#if defined(__AVX512F__)
                _mm512_stream_ps(reinterpret_cast<float*>(out + j), _mm512_mul_ps(_mm512_loadu_ps(in + j), _mm512_set1_ps(c)));
#else
                _mm256_stream_ps(reinterpret_cast<float*>(out + j), _mm256_mul_ps(_mm256_loadu_ps(in + j), _mm256_set1_ps(c)));
#endif
            } else {
#if defined(__AVX512F__)
                _mm512_stream_pd(reinterpret_cast<double*>(out + j), _mm512_mul_pd(_mm512_loadu_pd(in + j), _mm512_set1_pd(c)));
#else
                _mm256_stream_pd(reinterpret_cast<double*>(out + j), _mm256_mul_pd(_mm256_loadu_pd(in + j), _mm256_set1_pd(c)));
#endif
            }
        }
    }
#else
    (void)stream;
#endif
#pragma omp simd
    for (int64_t i = j; i < n; ++i) out[i] = in[i] * c;
}

inline void stream_fence() {
#if defined(__AVX__)
    _mm_sfence();
#endif
}

// One task's elementwise pass: values into vbuf, derivatives into dbuf (then, scaled, into gb) and,
// with SGRAD, d * x into sbuf. Returns nonzero if some w is not finite.
// With a cost table (index k + hi) the level cost is looked up instead of the encoding's HW.
template <class F, int E, int R, bool SGRAD, bool TABLE>
inline int penalty_block(const F* wb, int64_t len, F s, F gstep, int bits, const F* table, F* vbuf, F* gb,
                         F* sbuf, F* dbuf, bool stream) {
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
        dbuf[j] = d;
        if constexpr (SGRAD) sbuf[j] = d * x;  // -d/ds = d w / s^2 = d x / s (1/s applied once later)
    }
    // The gradients leave in a pass of their own, from the L1-resident block: stored in the pass above,
    // a gradient at the same 4 KiB offset as w (two page-aligned arrays, the usual case) stalled the
    // loads of w (4K aliasing; measured: twice the time of the same pass with the gradient 64 B away).
    store_scaled(dbuf, len, gstep, gb, stream);
    return bad;
}

// Row-scaled penalty: tasks are (row, block of kBlock columns), each with its own value and
// scale-gradient partials, reduced in task order. grad_scale == nullptr: no scale gradient (the
// unscaled penalty is one row with scale 1: x / 1 is exact).
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
    const bool stream = rows * cols * int64_t(sizeof(F)) >= kStreamBytes;
#pragma omp parallel num_threads(nt) reduction(| : bad)
    {
        std::vector<F> vbuf_store(static_cast<size_t>(kBlock)), sbuf_store(static_cast<size_t>(kBlock)),
            dbuf_store(static_cast<size_t>(kBlock));
        F* vbuf = vbuf_store.data();
        F* sbuf = sbuf_store.data();
        F* dbuf = dbuf_store.data();
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
                bad |= scale_grad ? penalty_block<F, E, R, true, true>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf, dbuf, stream)
                                  : penalty_block<F, E, R, false, true>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf, dbuf, stream);
            else
                bad |= scale_grad ? penalty_block<F, E, R, true, false>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf, dbuf, stream)
                                  : penalty_block<F, E, R, false, false>(wb, len, s, gstep, bits, table, vbuf, gb, sbuf, dbuf, stream);
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
        stream_fence();  // the streamed gradients are visible before the region's barrier
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
