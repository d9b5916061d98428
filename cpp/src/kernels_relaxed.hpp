// Included by kernels_impl.hpp only, inside its per-ISA anonymous namespace (compiled once per tier).
// The relaxed Hamming weight and the fused, row-scaled penalty with its gradients.
#pragma once
// ---------------------------------------------------------------------------------------------
// Relaxed Hamming weight
// ---------------------------------------------------------------------------------------------

// The relaxed level cost at x (see relaxed.hpp for the definition) in two steps: level_below finds
// the level k below x (clamped to [lo, hi - 1]) and x's fraction f past it; relaxed_from_costs gives
// the value and derivative from the costs of levels km (k - 1, or lo at the lower bound), k and k + 1.
// x clamped to the levels' range [-fhi, fhi] by two unconditional compares (vectorisable; NaN stays NaN).
template <class F>
inline F clamp_to_levels(F x, F fhi) {
    const F xl = x < -fhi ? -fhi : x;
    return xl > fhi ? fhi : xl;
}

template <class F>
inline int32_t level_below(F x, int bits, F& f) {
    const F fhi = F(level_max(bits));
    const F xc = clamp_to_levels(x, fhi);
    F kf = __builtin_floor(xc);
    kf = kf > fhi - F(1) ? fhi - F(1) : kf;  // so that k + 1 <= hi; x == hi gives f == 1
    kf = kf == kf ? kf : F(0);                // NaN input: keep the lookups in range (flagged)
    f = xc - kf;
    return int32_t(kf);
}

// ((acc t2 + next) t2 + ...) written out at compile time (straight-line code, which vectorises).
inline double horner(double, double acc) { return acc; }

template <class... C>
inline double horner(double t2, double acc, double next, C... rest) {
    return horner(t2, acc * t2 + next, rest...);
}

// The cosine relaxation's two terms at a distance g in [0, 1/2] from a level, in double, in operations
// that vectorise (libm's cos and sin kept its loops scalar: no vector libm without fast-math): h = 1 -
// cos t and s = sin t, t = pi g, by their Taylor polynomials to t^22 and t^21 (within 2e-17: the first
// omitted terms are (pi/2)^24 / 24! and (pi/2)^23 / 23!), by Horner's rule in t^2. h comes straight
// from its polynomial, t^2 (1/2! - t^2/4! + ...), never as 1 minus a cosine near 1, so it keeps its
// relative precision however near the level: h = 0 at g = 0.
template <class F>
inline void cosine_terms(F g, double& h, double& s) {
    const double t = 3.14159265358979323846 * double(g), t2 = t * t;
    h = horner(t2, 1.0 / 1124000727777607680000.0, -1.0 / 2432902008176640000.0, 1.0 / 6402373705728000.0,
               -1.0 / 20922789888000.0, 1.0 / 87178291200.0, -1.0 / 479001600.0, 1.0 / 3628800.0,
               -1.0 / 40320.0, 1.0 / 720.0, -1.0 / 24.0, 0.5) * t2;
    s = t - t * (horner(t2, -1.0 / 51090942171709440000.0, 1.0 / 121645100408832000.0,
                        -1.0 / 355687428096000.0, 1.0 / 1307674368000.0, -1.0 / 6227020800.0,
                        1.0 / 39916800.0, -1.0 / 362880.0, 1.0 / 5040.0, -1.0 / 120.0, 1.0 / 6.0) * t2);
}

// Value and derivative at x from level_below's k and f and the costs tm, t0, t1 of levels k - 1 (lo at
// the lower bound), k and k + 1. The linear relaxation takes f as level_below computed it (x - k in F:
// exact but for x in (-1, 0), where it is within half an ulp of 1, the precision of a value on the
// HW's scale; the demo's results depend on these bits). The cosine relaxation, t0 + dr (1 - cos(pi f))
// / 2, starts from the nearer level: t0 + dr h(pi f) / 2 for f <= 1/2, t1 - dr h(pi g) / 2 above, with
// g = (k + 1) - x exact there (Sterbenz; for x in (-1, -1/2), g = -x), so a value near either level
// keeps its precision (1 - cos(pi f) = 2 - h(pi g) and sin(pi f) = sin(pi g)); exact at the integers.
template <class F, int R>
inline void relaxed_from_costs(F x, int32_t k, F f, F tm, F t0, F t1, int bits, F& value, F& deriv) {
    const F fhi = F(level_max(bits)), flo = -fhi;
    const F dr = t1 - t0;
    const bool outside = (x < flo) | (x > fhi);
    if constexpr (R == int(Relaxation::Linear)) {
        (void)k;
        value = t0 + f * dr;
        const F left = t0 - tm;  // 0 at the lower bound, where tm = t0
        F d = f == F(0) ? F(0.5) * (left + dr) : dr;
        d = x == fhi ? F(0.5) * dr : d;
        deriv = outside ? F(0) : d;
    } else {
        (void)tm;
        const F pi = F(3.14159265358979323846);
        const bool upper = f > F(0.5);
        double h, sn;
        cosine_terms(upper ? F(k + 1) - clamp_to_levels(x, fhi) : f, h, sn);
        const F half = dr * F(h) * F(0.5);
        value = upper ? t1 - half : t0 + half;
        const F d = dr * pi * F(0.5) * F(sn);
        deriv = (outside | (x == fhi) | (f == F(0))) ? F(0) : d;
    }
}

// Both steps, the costs from costs(km, k, tm, t0, t1): the levels' HW (hw_costs).
template <class F, int R, class Costs>
inline void relaxed_eval(F x, int bits, const Costs& costs, F& value, F& deriv) {
    const int32_t lo = -int32_t(level_max(bits));
    F f;
    const int32_t k = level_below(x, bits, f);
    F tm, t0, t1;
    costs(k > lo ? k - 1 : lo, k, tm, t0, t1);
    relaxed_from_costs<F, R>(x, k, f, tm, t0, t1, bits, value, deriv);
}

// The HW of levels km, k and k + 1 in encoding E. PACK (bits <= 8, every code below 2^8; for tiers
// without a vector popcount): the three codes in the bytes of one word, counted by one byte_counts
// instead of three whole counts. The same integers either way.
template <int E, bool PACK>
struct HwCosts {
    uint32_t mask, half;
    template <class F>
    void operator()(int32_t km, int32_t k, F& tm, F& t0, F& t1) const {
        if constexpr (PACK) {
            const uint32_t c = byte_counts(code_bits<int32_t, E>(km, mask, half) |
                                           (code_bits<int32_t, E>(k, mask, half) << 8) |
                                           (code_bits<int32_t, E>(k + 1, mask, half) << 16));
            tm = F(int32_t((c & 0xFFu) + sign_cell<int32_t, E>(km)));
            t0 = F(int32_t(((c >> 8) & 0xFFu) + sign_cell<int32_t, E>(k)));
            t1 = F(int32_t((c >> 16) + sign_cell<int32_t, E>(k + 1)));
        } else {
            tm = F(int32_t(hw_elem<int32_t, E>(km, mask, half)));
            t0 = F(int32_t(hw_elem<int32_t, E>(k, mask, half)));
            t1 = F(int32_t(hw_elem<int32_t, E>(k + 1, mask, half)));
        }
    }
};

template <int E, bool PACK>
inline HwCosts<E, PACK> hw_costs(int bits) {
    return {(uint32_t(1) << bits) - 1, uint32_t(1) << (bits - 1)};
}

// Whether a pass at this width takes the packed count (HwCosts).
inline bool pack_costs(int bits) { return !kVectorPopcount && bits <= 8; }

template <class F, int E, int R, bool PACK>
inline void relaxed_point(F x, int bits, F& value, F& deriv) {
    relaxed_eval<F, R>(x, bits, hw_costs<E, PACK>(bits), value, deriv);
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

template <class F, int E, int R, bool PACK>
int64_t relaxed_map_impl(const F* x, int64_t n, int bits, F* value, F* deriv, int n_threads) {
    int bad = 0;
    const int nt = threads_for(n, n_threads);
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(| : bad)
    for (int64_t i = 0; i < n; ++i) {
        bad |= int(not_finite(x[i]));
        relaxed_point<F, E, R, PACK>(x[i], bits, value[i], deriv[i]);
    }
    return bad ? first_not_finite(x, n) : -1;
}

template <class F, int E, int R>
int64_t relaxed_map(const F* x, int64_t n, int bits, F* value, F* deriv, int n_threads) {
    if (pack_costs(bits)) return relaxed_map_impl<F, E, R, !kVectorPopcount>(x, n, bits, value, deriv, n_threads);
    return relaxed_map_impl<F, E, R, false>(x, n, bits, value, deriv, n_threads);
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

// Per-thread scratch of a penalty task: values, derivatives and d * x of one block; for the table
// path (TABLE below) also one chunk's x, fraction, level and looked-up costs.
template <class F>
struct PenaltyScratch {
    static constexpr int64_t kChunk = 512;  // the table path's chunk: its 6 arrays stay in L1
    std::vector<F> v, s, d, x, f, tm, t0, t1;
    std::vector<int32_t> k;
    explicit PenaltyScratch(bool table)
        : v(size_t(kBlock)), s(size_t(kBlock)), d(size_t(kBlock)), x(table ? kChunk : 0), f(x.size()),
          tm(x.size()), t0(x.size()), t1(x.size()), k(x.size()) {}
};

// One task's elementwise pass: values into sc.v, derivatives into sc.d (then, scaled, into gb) and,
// with SGRAD, d * x into sc.s. Returns nonzero if some w is not finite.
// TABLE: the level costs are looked up in table (index k + hi) instead of computed from the encoding.
// Table lookups kept the fused loop scalar (GCC 12 on the AVX2 tier: no gathers under generic
// tuning), so that path runs in chunks of three loops, the two arithmetic ones vectorised and the
// lookups alone scalar; every operation is relaxed_eval's, so the bits are the same as one fused loop's.
template <class F, int E, int R, bool SGRAD, bool TABLE, bool PACK>
inline int penalty_block(const F* wb, int64_t len, F s, F gstep, int bits, const F* table,
                         PenaltyScratch<F>& sc, F* gb, bool stream) {
    int bad = 0;
    F* vbuf = sc.v.data();
    F* dbuf = sc.d.data();
    F* sbuf = sc.s.data();
    if constexpr (TABLE) {
        const int32_t hi = int32_t(level_max(bits)), lo = -hi;
        F *xb = sc.x.data(), *fb = sc.f.data(), *mb = sc.tm.data(), *b0 = sc.t0.data(), *b1 = sc.t1.data();
        int32_t* kb = sc.k.data();
        for (int64_t c0 = 0; c0 < len; c0 += PenaltyScratch<F>::kChunk) {
            const int64_t n = (len - c0) < PenaltyScratch<F>::kChunk ? (len - c0) : PenaltyScratch<F>::kChunk;
#pragma omp simd reduction(| : bad)
            for (int64_t j = 0; j < n; ++j) {
                bad |= int(not_finite(wb[c0 + j]));
                xb[j] = wb[c0 + j] / s;
                kb[j] = level_below(xb[j], bits, fb[j]);
            }
            for (int64_t j = 0; j < n; ++j) {
                const int32_t k = kb[j];
                if constexpr (R == int(Relaxation::Linear)) mb[j] = table[(k > lo ? k - 1 : lo) + hi];
                b0[j] = table[k + hi];
                b1[j] = table[k + 1 + hi];
            }
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
                F d;
                relaxed_from_costs<F, R>(xb[j], kb[j], fb[j], mb[j], b0[j], b1[j], bits, vbuf[c0 + j], d);
                dbuf[c0 + j] = d;
                if constexpr (SGRAD) sbuf[c0 + j] = d * xb[j];
            }
        }
    } else {
        (void)table;
#pragma omp simd reduction(| : bad)
        for (int64_t j = 0; j < len; ++j) {
            bad |= int(not_finite(wb[j]));
            const F x = wb[j] / s;
            F d;
            relaxed_point<F, E, R, PACK>(x, bits, vbuf[j], d);
            dbuf[j] = d;
            if constexpr (SGRAD) sbuf[j] = d * x;  // -d/ds = d w / s^2 = d x / s (1/s applied once later)
        }
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
    const bool pack = pack_costs(bits);
#pragma omp parallel num_threads(nt) reduction(| : bad)
    {
        PenaltyScratch<F> sc(table_mode);
        const F* vbuf = sc.v.data();
        const F* sbuf = sc.s.data();
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
#define HAMQ_BLOCK(SG, TB, PK) penalty_block<F, E, R, SG, TB, PK>(wb, len, s, gstep, bits, table, sc, gb, stream)
            if (table_mode)
                bad |= scale_grad ? HAMQ_BLOCK(true, true, false) : HAMQ_BLOCK(false, true, false);
            else if (pack)
                bad |= scale_grad ? HAMQ_BLOCK(true, false, !kVectorPopcount) : HAMQ_BLOCK(false, false, !kVectorPopcount);
            else
                bad |= scale_grad ? HAMQ_BLOCK(true, false, false) : HAMQ_BLOCK(false, false, false);
#undef HAMQ_BLOCK
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
