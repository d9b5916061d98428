// Included by kernels_impl.hpp only, inside its per-ISA anonymous namespace (compiled once per tier).
// The crossbar: the binary GEMM reduced to conductance sums, readings and outputs, and the per-cell
// wire-position deviation (crossbar_kernel.hpp documents the arguments).
#pragma once
// ---------------------------------------------------------------------------------------------
// Crossbar: binary GEMM reduced to energy terms and outputs (see crossbar_kernel.hpp)
// ---------------------------------------------------------------------------------------------

constexpr int64_t kXbarVectorsPerTask = 4;
constexpr int64_t kXbarColPlanesPerTask = 1024;

// counts[c] = sum over the nw words j of popcount(xs[j] & rows[j][c]), c < len: the binary-GEMM
// inner loop (xs: the nonzero input words of a tile, rows: the matching weight-plane rows).
template <int NW = 0>
inline void and_popcount_tile(const uint64_t* xs, const uint64_t* const* rows_, int nw_, uint32_t* counts,
                              int64_t len) {
    const int nw = NW > 0 ? NW : nw_;
    const uint64_t* rr[NW > 0 ? NW : 1];
    for (int j = 0; j < NW; ++j) rr[j] = rows_[j];
    auto rows = [&](int j) { return NW > 0 ? rr[j] : rows_[j]; };
    int64_t c = 0;
#ifdef HAMQ_HAVE_AVX512_INTRIN
    for (; c + 16 <= len; c += 16) {
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        for (int j = 0; j < nw; ++j) {
            const __m512i vx = _mm512_set1_epi64(int64_t(xs[j]));
            a = _mm512_add_epi64(a, _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(rows(j) + c))));
            b = _mm512_add_epi64(b, _mm512_popcnt_epi64(_mm512_and_si512(vx, _mm512_loadu_si512(rows(j) + c + 8))));
        }
        const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(a)),
                                              _mm512_cvtepi64_epi32(b), 1);
        _mm512_storeu_si512(counts + c, ab);
    }
#endif
    for (; c < len; ++c) {
        uint32_t v = 0;
        for (int j = 0; j < nw; ++j) v += uint32_t(__builtin_popcountll(xs[j] & rows(j)[c]));
        counts[c] = v;
    }
}

// f(NW) with a tile's nonzero word count as a compile-time constant where it is 1 or 2 (a conversion
// group of <= 128 rows), else NW = 0 (any count, read at run time).
template <class F>
inline void with_words(int nw, F&& f) {
    if (nw == 2)
        f(std::integral_constant<int, 2>{});
    else if (nw == 1)
        f(std::integral_constant<int, 1>{});
    else
        f(std::integral_constant<int, 0>{});
}

// The same for 2-bit cells over both planes at once: counts of x & w0, x & w1 and x & w0 & w1 (the
// last, with the first two, gives the count of every digit value), without storing the AND plane.
// NW > 0: exactly NW words, their pointers held in registers (a tile of <= 128 rows has 1 or 2).
template <int NW = 0>
inline void and_popcount_tile2(const uint64_t* xs, const uint64_t* const* rows0_, const uint64_t* const* rows1_, int nw_,
                               uint32_t* c0, uint32_t* c1, uint32_t* c01, int64_t len) {
    const int nw = NW > 0 ? NW : nw_;
    const uint64_t* r0[NW > 0 ? NW : 1];
    const uint64_t* r1[NW > 0 ? NW : 1];
    for (int j = 0; j < NW; ++j) {
        r0[j] = rows0_[j];
        r1[j] = rows1_[j];
    }
    auto rows0 = [&](int j) { return NW > 0 ? r0[j] : rows0_[j]; };
    auto rows1 = [&](int j) { return NW > 0 ? r1[j] : rows1_[j]; };
    int64_t c = 0;
#ifdef HAMQ_HAVE_AVX512_INTRIN
    for (; c + 8 <= len; c += 8) {
        __m512i a = _mm512_setzero_si512(), bb = _mm512_setzero_si512(), ab = _mm512_setzero_si512();
        for (int j = 0; j < nw; ++j) {
            const __m512i vx = _mm512_set1_epi64(int64_t(xs[j]));
            const __m512i x0 = _mm512_and_si512(vx, _mm512_loadu_si512(rows0(j) + c));
            const __m512i w1 = _mm512_loadu_si512(rows1(j) + c);
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
            const uint64_t x0 = xs[j] & rows0(j)[c], w1 = rows1(j)[c];
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

// term(col, lane, has_weight) for every column of [c0, c1), lane = column offset mod kLanes from c0:
// whole chunks of kLanes vectorised, the last partial chunk masked (the same lanes). has_weight is a
// compile-time flag, so a null weight array is never the base of a masked load (a microcode assist
// on every chunk).
template <class Term>
inline void for_lanes(int64_t c0, int64_t c1, bool has_weight, Term&& term) {
    auto run = [&](auto hw) {
        int64_t c = c0;
        for (; c + kLanes <= c1; c += kLanes) {
#pragma omp simd
            for (int l = 0; l < kLanes; ++l) term(c + l, l, hw);
        }
        const int64_t rem = c1 - c;
#pragma omp simd
        for (int l = 0; l < kLanes; ++l)
            if (l < rem) term(c + l, l, hw);
    };
    if (has_weight)
        run(std::true_type{});
    else
        run(std::false_type{});
}

// The conductance sums of one (vector, pulse, row tile) over columns [c0, c1) with nd driven rows:
// plane k's counts are cnt[k * stride + c] (converted through int32_t, exact for counts < 2^31: one
// signed conversion, where GCC emulates the unsigned one with a compare and an add). G0 = g_row nd +
// sum_k g_plane[k] count_k per column is summed (and, with POWER, f = (s G0)^k = s G0 exp((k-1)
// ln(s G0)), in single precision). Lanes are fixed (lane = column offset mod kLanes from c0), so every
// sum's order is the same on every tier.
template <int PC, bool POWER>
inline void column_sums(const uint32_t* cnt, int64_t stride, int64_t c0, int64_t c1, int nd,
                        const XbarPopcountArgs& a, const float* weight, double* g_lane, double* f_lane,
                        double& gmax) {
    if constexpr (POWER) {
        // single precision, summed per lane within this call (~nc / 16 terms), then added in double;
        // the largest G per lane too (a horizontal max per chunk would chain the chunks' latencies)
        const float g0 = float(a.g_row * double(nd)), sc = float(a.scale), em1 = float(a.exponent - 1.0);
        float gp[PC];
        for (int k = 0; k < PC; ++k) gp[k] = float(a.g_plane[k]);
        float gl[kLanes] = {0}, fl[kLanes] = {0}, gm[kLanes];
        for (int l = 0; l < kLanes; ++l) gm[l] = float(gmax);
        for_lanes(c0, c1, weight != nullptr, [&](int64_t col, int l, auto has_weight) {
            float g = g0;
            for (int k = 0; k < PC; ++k) g += gp[k] * float(int32_t(cnt[k * stride + col]));
            float wt = 1.0f;
            if constexpr (decltype(has_weight)::value) wt = weight[col];
            g = wt != 0.0f ? g : 0.0f;  // a column that is not converted draws no current
            gl[l] += g;
            gm[l] = g > gm[l] ? g : gm[l];
            const float u = sc * g;
            const float y = em1 * fast_logf(u);
            const float f = u * (1.0f + y * (1.0f + y * (0.5f + y * (1.0f / 6))));
            fl[l] += wt != 0.0f ? wt * f : 0.0f;
        });
        float m = gm[0];
        for (int l = 0; l < kLanes; ++l) {
            g_lane[l] += double(gl[l]);
            f_lane[l] += double(fl[l]);
            m = gm[l] > m ? gm[l] : m;
        }
        gmax = double(m);
    } else {
        const double g0 = a.g_row * double(nd);
        double gp[PC];
        for (int k = 0; k < PC; ++k) gp[k] = a.g_plane[k];
        double gm[kLanes];
        for (int l = 0; l < kLanes; ++l) gm[l] = gmax;
        for_lanes(c0, c1, weight != nullptr, [&](int64_t col, int l, auto has_weight) {
            double g = g0;
            for (int k = 0; k < PC; ++k) g += gp[k] * double(int32_t(cnt[k * stride + col]));
            if constexpr (decltype(has_weight)::value) g = weight[col] == 0.0f ? 0.0 : g;  // not converted
            g_lane[l] += g;
            gm[l] = g > gm[l] ? g : gm[l];
        });
        double m = gm[0];
        for (int l = 0; l < kLanes; ++l) m = gm[l] > m ? gm[l] : m;
        gmax = m;
    }
}

// A reading on a column's own ladder (digit units): step * ladder_level(v / step, lmax); step 0: exact.
inline double ladder_reading(double v, double step, double lmax) {
    const double lv = ladder_level(v / (step > 0 ? step : 1.0), lmax);
    return step > 0 ? step * lv : v;
}

// f(x, y) with the two run-time flags as compile-time std::bool_constant values.
template <class F>
inline void with_flags(bool x, bool y, F&& f) {
    const std::true_type yes;
    const std::false_type no;
    if (x && y) f(yes, yes);
    else if (x) f(yes, no);
    else if (y) f(no, yes);
    else f(no, no);
}

// The ADC input of a conductance readout in digit units: the leakage leak (nd g_row / g_unit) plus
// sum_k gp[k] count_k (gp[k] = g_plane[k] / g_unit), in this order: the one home of the reading that
// add_readings, LevelReadout (its double-precision levels) and add_histogram (calibration) convert.
template <int PC>
inline double conductance_reading(double leak, const double* gp, const uint32_t* cnt, int64_t nc, int64_t c) {
    double v = leak;
    for (int k = 0; k < PC; ++k) v += gp[k] * double(int32_t(cnt[k * nc + c]));
    return v;
}

// The readings of one (vector, tile, pulse): every column's digit sum (or conductance, g_unit > 0, under
// an ideal ADC; through a ladder: LevelReadout) through its ADC, shift-added into colacc with the pulse's
// weight pc (the ADC as crossbar_readings.cpp adc_reading). A column that is not converted (conv_weight
// 0) reads 0.
template <int CB, int PC>
inline void add_readings(const XbarPopcountArgs& a, const uint32_t* cnt, int64_t nc, int64_t base, int nd, double pc,
                         const double* inv_gain, uint32_t* sums, double* colacc) {
    if (!(a.g_unit > 0)) {  // the digit sums (a conductance readout reads the counts themselves)
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) {
            uint32_t v = 0;
            for (int j = 0; j < CB; ++j) v += cnt[j * nc + c] << j;
            sums[c] = v;
        }
    }
    if (a.g_unit > 0) {  // conductance readout under an ideal ADC (a ladder: LevelReadout), in digit
        // units: the conductances divided by g_unit once per call, the gains' inverses per column
        const double leak = a.g_row * double(nd) / a.g_unit, full = double(nd) * a.cell_max;
        double gp[PC];
        for (int k = 0; k < PC; ++k) gp[k] = a.g_plane[k] / a.g_unit;
        with_flags(a.conv_weight != nullptr, a.col_inverted != nullptr, [&](auto has_weight, auto has_inverted) {
            auto reading = [&](int64_t c) {
                double v = (conductance_reading<PC>(leak, gp, cnt, nc, c) - leak) * inv_gain[c];
                if constexpr (decltype(has_weight)::value) v = a.conv_weight[base + c] == 0.0f ? 0.0 : v;
                if constexpr (decltype(has_inverted)::value) v = a.col_inverted[base + c] ? full - v : v;
                return v;
            };
#pragma omp simd
            for (int64_t c = 0; c < nc; ++c) colacc[c] += pc * reading(c);
        });
    } else if (a.col_step || a.col_inverted) {  // per-column ADC, complemented columns: branch-free
        const double full = double(nd) * a.cell_max;
        auto run = [&](auto has_step, auto has_inverted) {
            auto reading = [&](int64_t c) {
                double v = double(int32_t(sums[c]));
                if constexpr (decltype(has_step)::value) v = ladder_reading(v, a.col_step[base + c], a.col_lmax[base + c]);
                if constexpr (decltype(has_inverted)::value) v = a.col_inverted[base + c] ? full - v : v;
                return v;
            };
#pragma omp simd
            for (int64_t c = 0; c < nc; ++c) colacc[c] += pc * reading(c);
        };
        with_flags(a.col_step != nullptr, a.col_inverted != nullptr, run);
    } else if (a.adc_level) {
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) colacc[c] += pc * a.adc_level[sums[c]];
    } else {
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) colacc[c] += pc * double(int32_t(sums[c]));
    }
}

// The conductance readout through an ADC ladder (col_inv_step set), per (vector, tile): every pulse's
// levels summed exactly (pc level, pc = +-2^p, |pc level| < 2^31: integers, in Acc = int32_t where
// fits_int32 says every sum fits, else double), turned into readings once the tile's pulses are read:
//     sum_p pc_p (step l_p - leak_p) / gain = (step sum_p pc_p l_p - sum_p pc_p leak_p) / gain
// (finish). A level is ladder_level of the double-precision reading q = v / step, v = leak + sum_k g_k
// count_k in digit units (exact, below, computes it so). Single precision gives it wherever its t = q +
// 0.5 lies farther than b from a whole number, b = M 2^-20, M = rows (|g_row| + sum_k |g_plane_k|) /
// (g_unit step) >= the sum of the reading's terms' magnitudes: single precision's error is at most
// 7 2^-24 M + 2^-25 (each term's coefficient and product rounded: 2 2^-24 M in all; each sum, at most
// PC = 4: 4 2^-24 M; the + 0.5: 2^-24 M + 2^-25); with double precision's 1e-15 M and the tie tolerance
// kLadderTie 1e-9 it is below b wherever a boundary can be reached (q >= 0.5, so M >= 0.5). A pulse with a column nearer a boundary takes every column's level from
// the double-precision reading instead. The same levels either way, on every tier; 8 lanes per 256 bits
// instead of 4, and no double-precision ladder, for all but the rare pulses near a boundary.
template <int PC, class Acc>
struct LevelReadout {
    double lu_unit = 0.0, gp[PC] = {};               // g_row / g_unit, g_plane[k] / g_unit (digit units)
    double bound = 0.0;                              // 2^-20 of the largest reading, reach (b = bound / step)
    std::vector<float> lu, af, lo, hi, top, lev;     // [nc] per column ([PC][nc] for af), in steps
    std::vector<Acc> lacc;                           // [nc]: sum of pc * level over the tile's pulses
    double leak_sum = 0.0, full_sum = 0.0;           // sum of pc * leakage, pc * nd * cell_max

    // The largest reading in digit units: rows (>= any nd) times (|g_row| + sum_k |g_plane_k|) / g_unit,
    // a bound on a reading's terms per driven row.
    static double reach(const XbarPopcountArgs& a) {
        double mag = std::fabs(a.g_row / a.g_unit);
        for (int k = 0; k < PC; ++k) mag += std::fabs(a.g_plane[k] / a.g_unit);
        return 64.0 * a.words_per_tile * mag;
    }

    // int32 level sums hold every sum of pc * level: a level is at most lmax and at most the largest
    // reading (steps are >= 1), and |sum_p pc_p l_p| <= that (2^P - 1).
    static bool fits_int32(const XbarPopcountArgs& a, int64_t n) {
        double top_max = 0.0;
        for (int64_t i = 0; i < n; ++i) top_max = a.col_lmax[i] > top_max ? a.col_lmax[i] : top_max;
        const double level_max = std::floor(reach(a)) + 1.0;
        return (top_max < level_max ? top_max : level_max) * std::ldexp(1.0, a.a_planes) < 0x1p31;
    }

    // max_cols 0: unused (a readout without a ladder, or the other accumulator)
    LevelReadout(const XbarPopcountArgs& a, int64_t max_cols)
        : lu(size_t(max_cols)), af(size_t(PC * max_cols)), lo(size_t(max_cols)), hi(size_t(max_cols)),
          top(size_t(max_cols)), lev(size_t(max_cols)), lacc(size_t(max_cols)) {
        if (max_cols == 0) return;
        lu_unit = a.g_row / a.g_unit;
        for (int k = 0; k < PC; ++k) gp[k] = a.g_plane[k] / a.g_unit;
        bound = reach(a) * 0x1p-20;
    }

    // Per (vector, tile): the columns [base, base + nc)'s coefficients in steps, the sums cleared.
    void start(const XbarPopcountArgs& a, int64_t base, int64_t nc) {
        const double *inv_step = a.col_inv_step + base, *lmax = a.col_lmax + base;
        const double lu_u = lu_unit, bnd = bound;
        double g[PC];
        for (int k = 0; k < PC; ++k) g[k] = gp[k];
        float *lup = lu.data(), *afp = af.data(), *lop = lo.data(), *hip = hi.data(), *tp = top.data();
        Acc* lp = lacc.data();
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) {
            const double inv = inv_step[c];
            lup[c] = float(lu_u * inv);
            for (int k = 0; k < PC; ++k) afp[k * nc + c] = float(g[k] * inv);
            const float b = float(bnd * inv);
            lop[c] = b;
            hip[c] = 1.0f - b;
            tp[c] = float(lmax[c]);
            lp[c] = 0;
        }
        leak_sum = full_sum = 0.0;
    }

    // One pulse with nd > 0 driven rows and weight pc (plane k's counts cnt[k * nc + c]).
    void add(const XbarPopcountArgs& a, const uint32_t* cnt, int64_t nc, int64_t base, int nd, double pc) {
        const float ndf = float(nd), pcf = float(pc);
        const float *afp = af.data(), *lup = lu.data(), *lop = lo.data(), *hip = hi.data(), *tp = top.data();
        float* levp = lev.data();
        Acc* lp = lacc.data();
        int near = 0;
#pragma omp simd reduction(| : near)
        for (int64_t c = 0; c < nc; ++c) {
            float q = ndf * lup[c];
            for (int k = 0; k < PC; ++k) q += afp[k * nc + c] * float(int32_t(cnt[k * nc + c]));
            const float t = q + 0.5f, l = std::floor(t), fr = t - l;
            near |= (fr <= lop[c]) | (fr >= hip[c]);
            const float lv = l < tp[c] ? l : tp[c];
            levp[c] = lv;
            lp[c] += Acc(int32_t(pcf * lv));
        }
        const double leak = a.g_row * double(nd) / a.g_unit;
        leak_sum += pc * leak;
        full_sum += pc * (double(nd) * a.cell_max);
        if (near) exact(a, cnt, nc, base, leak, pcf);
    }

    // A pulse with a column near a level boundary: every column's level from the double-precision
    // reading, the single-precision one taken back.
    void exact(const XbarPopcountArgs& a, const uint32_t* cnt, int64_t nc, int64_t base, double leak, float pcf) {
        const double *inv_step = a.col_inv_step + base, *lmax = a.col_lmax + base;
        const float* levp = lev.data();
        Acc* lp = lacc.data();
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) {
            const double v = conductance_reading<PC>(leak, gp, cnt, nc, c);
            const float l = float(ladder_level(v * inv_step[c], lmax[c]));  // a whole number < 2^16
            lp[c] += Acc(int32_t(pcf * l)) - Acc(int32_t(pcf * levp[c]));
        }
    }

    // The tile's readings shift-added into colacc (conv_weight 0: not converted, reads 0; inverted:
    // the complement, nd cell_max - reading per pulse).
    void finish(const XbarPopcountArgs& a, int64_t nc, int64_t base, const double* inv_gain, double* colacc) const {
        const double* step = a.col_step + base;
        const Acc* la = lacc.data();
        const double ls = leak_sum, fs = full_sum;
        with_flags(a.conv_weight != nullptr, a.col_inverted != nullptr, [&](auto has_weight, auto has_inverted) {
#pragma omp simd
            for (int64_t c = 0; c < nc; ++c) {
                double v = (step[c] * double(la[c]) - ls) * inv_gain[c];
                if constexpr (decltype(has_weight)::value) v = a.conv_weight[base + c] == 0.0f ? 0.0 : v;
                if constexpr (decltype(has_inverted)::value) v = a.col_inverted[base + c] ? fs - v : v;
                colacc[c] += v;
            }
        });
    }
};

// Calibration: the ADC input v of every converted column of one (vector, tile, pulse) with nd > 0
// driven rows, binned per column of a group (hist, [cpg][bins]), and the least-squares gain's sums
// (vs: (v - leakage) S, ss: S^2, S the digit sum), in this call's column order. v is the reading
// add_readings converts: the digit sum, or the conductance sum in digit units with the leakage.
template <int CB, int PC>
inline void add_histogram(const XbarPopcountArgs& a, const uint32_t* cnt, int64_t nc, int64_t base, int nd,
                          int64_t* hist, double* vs, int64_t* ss) {
    const int64_t cpg = a.cols_per_group, nb = a.hist_bins;
    const bool cond = a.g_unit > 0;
    const double leak = cond ? a.g_row * double(nd) / a.g_unit : 0.0;
    double gp[PC];
    for (int k = 0; k < PC; ++k) gp[k] = cond ? a.g_plane[k] / a.g_unit : 0.0;
    for (int64_t c = 0; c < nc; ++c) {
        if (a.col_skip && a.col_skip[base + c]) continue;
        int64_t s = 0;
        for (int j = 0; j < CB; ++j) s += int64_t(cnt[j * nc + c]) << j;
        double v = double(s);
        if (cond) v = conductance_reading<PC>(leak, gp, cnt, nc, c);
        const double fb = std::floor(v * a.hist_per_unit);
        const int64_t bin = fb <= 0.0 ? 0 : (fb >= double(nb - 1) ? nb - 1 : int64_t(fb));
        const int64_t key = c % cpg;
        hist[key * nb + bin] += 1;
        vs[key] += (v - leak) * double(s);
        ss[key] += s * s;
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
    // calibration's gain sums per task and column of a group, reduced in task order (deterministic)
    std::vector<double> task_vs(a.hist_per_unit > 0 ? size_t(n_tasks * cpg) : 0, 0.0);
    if (a.hist_per_unit > 0) {
        std::fill(a.hist, a.hist + cpg * a.hist_bins, int64_t(0));
        std::fill(a.hist_ss, a.hist_ss + cpg, 0.0);
    }
    const int64_t work = N * ld * T * W * P;
    const int nt = threads_for(work / 2, a.n_threads);
    // conductances through a ladder: level sums in int32 where they fit, else in double
    const bool by_levels = a.y && a.g_unit > 0 && a.col_inv_step;
    const bool narrow = by_levels && LevelReadout<PC, int32_t>::fits_int32(a, int64_t(T) * ncols);

#pragma omp parallel num_threads(nt)
    {
        const int64_t max_cols = groups_per_task * cpg;
        std::vector<uint32_t> counts(static_cast<size_t>(max_cols * PC));  // [PC][task columns]
        std::vector<uint32_t> sums(static_cast<size_t>(max_cols));         // digit sum S of each column
        std::vector<double> colacc(static_cast<size_t>(max_cols));         // shift-added ADC readings
        std::vector<uint64_t> xs(static_cast<size_t>(W));                   // nonzero input words
        std::vector<int> words(static_cast<size_t>(W));
        std::vector<const uint64_t*> rows(static_cast<size_t>(W)), rows1(static_cast<size_t>(W));
        std::vector<int64_t> extra_groups;
        std::vector<double> inv_gain_c(a.g_unit > 0 ? static_cast<size_t>(max_cols) : 0);  // 1 / each column's gain
        LevelReadout<PC, int32_t> levels32(a, narrow ? max_cols : 0);
        LevelReadout<PC, double> levels64(a, by_levels && !narrow ? max_cols : 0);
        auto with_levels = [&](auto&& f) {
            if (narrow)
                f(levels32);
            else
                f(levels64);
        };
        const bool hist_mode = a.hist_per_unit > 0;
        std::vector<int64_t> hist_t(hist_mode ? size_t(cpg * a.hist_bins) : 0), ss_t(hist_mode ? size_t(cpg) : 0);
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; ++task) {
            const int64_t vt = task / n_gtasks, gt = task % n_gtasks;
            const int64_t n0 = vt * kXbarVectorsPerTask;
            const int64_t n1 = (n0 + kXbarVectorsPerTask) < N ? n0 + kXbarVectorsPerTask : N;
            const int64_t g0 = gt * groups_per_task;
            const int64_t g1 = (g0 + groups_per_task) < G ? g0 + groups_per_task : G;
            const int64_t ng = g1 - g0, nc = ng * cpg, col0 = g0 * cpg;
            uint32_t* cnt = counts.data();
            const double* inv_gain = a.g_unit > 0 ? inv_gain_c.data() : nullptr;  // 1 without a gain: exact
            for (int64_t c = 0; inv_gain && c < nc; ++c)
                inv_gain_c[size_t(c)] = a.digit_gain ? 1.0 / a.digit_gain[c % cpg] : 1.0;
            extra_groups.clear();  // the task's groups with more than one physical copy
            for (int64_t g = 0; g < ng; ++g)
                if (a.group_mult[g0 + g] > 1) extra_groups.push_back(g);
            // Sums in kLanes fixed lanes (vectorisable, the same order on every tier).
            double g_lane[kLanes] = {0}, f_lane[kLanes] = {0};
            double gmax = 0.0;
            for (int64_t n = n0; n < n1; ++n) {
                if (a.y)
                    for (int64_t c = 0; c < nc; ++c) colacc[size_t(c)] = 0.0;
                for (int t = 0; t < T; ++t) {
                    if (by_levels) with_levels([&](auto& lr) { lr.start(a, int64_t(t) * ncols + col0, nc); });
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
                            with_words(nw, [&](auto NW) {
                                and_popcount_tile2<decltype(NW)::value>(xs.data(), rows.data(), rows1.data(), nw, cnt, cnt + nc,
                                                         cnt + 2 * nc, nc);
                            });
                        } else {
                            for (int k = 0; k < PC; ++k) {
                                for (int j = 0; j < nw; ++j)
                                    rows[size_t(j)] = a.w + (int64_t(t) * W + words[size_t(j)]) * ld + k * ncols + col0;
                                with_words(nw, [&](auto NW) {
                                    and_popcount_tile<decltype(NW)::value>(xs.data(), rows.data(), nw, cnt + k * nc, nc);
                                });
                            }
                        }
                        if (hist_mode && nd > 0)
                            add_histogram<CB, PC>(a, cnt, nc, int64_t(t) * ncols + col0, nd, hist_t.data(),
                                                  task_vs.data() + task * cpg, ss_t.data());
                        if (by_levels) {
                            if (nd > 0)
                                with_levels([&](auto& lr) { lr.add(a, cnt, nc, int64_t(t) * ncols + col0, nd, a.plane_coef[p]); });
                        } else if (a.y) {
                            add_readings<CB, PC>(a, cnt, nc, int64_t(t) * ncols + col0, nd, a.plane_coef[p], inv_gain,
                                                 sums.data(), colacc.data());
                        }
                        if (nd == 0 || !a.energy) continue;  // an idle read: G = 0 in every column
                        const float* cw = a.conv_weight ? a.conv_weight + int64_t(t) * ncols + col0 : nullptr;
                        column_sums<PC, POWER>(cnt, nc, 0, nc, nd, a, cw, g_lane, f_lane, gmax);
                        // Extra physical copies of a group (offset reference columns, one per
                        // array): the same conversions again.
                        for (const int64_t g : extra_groups) {
                            const int64_t extra = a.group_mult[g0 + g] - 1;
                            double xg[kLanes] = {0}, xf[kLanes] = {0};
                            column_sums<PC, POWER>(cnt, nc, g * cpg, (g + 1) * cpg, nd, a, cw, xg, xf, gmax);
                            for (int l = 0; l < kLanes; ++l) {
                                g_lane[l] += double(extra) * xg[l];
                                f_lane[l] += double(extra) * xf[l];
                            }
                        }
                    }
                    if (by_levels)
                        with_levels([&](auto& lr) { lr.finish(a, nc, int64_t(t) * ncols + col0, inv_gain, colacc.data()); });
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
        if (hist_mode) {
#pragma omp critical(hamq_xbar_hist)
            {
                for (size_t i = 0; i < hist_t.size(); ++i) a.hist[i] += hist_t[i];
                for (int64_t k = 0; k < cpg; ++k) a.hist_ss[k] += double(ss_t[size_t(k)]);
            }
        }
    }
    double sg = 0.0, sf = 0.0, gmax = 0.0;
    for (int64_t task = 0; task < n_tasks; ++task) {
        sg += task_g[size_t(task)];
        sf += task_f[size_t(task)];
        gmax = task_gmax[size_t(task)] > gmax ? task_gmax[size_t(task)] : gmax;
    }
    for (int64_t k = 0; a.hist_per_unit > 0 && k < cpg; ++k) {
        double v = 0.0;
        for (int64_t task = 0; task < n_tasks; ++task) v += task_vs[size_t(task * cpg + k)];
        a.hist_vs[k] = v;
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

double xbar_deviation(const int32_t* q, const DigitRule& rule, uint32_t invert, const float* drive,
                      const float* r_row, int64_t n, const float* inv_g, const float* g_model, const float* r_model,
                      float r, double* model) {
    // G - G_model = G G_model (R_model - R) with R = 1/G_device + r + r_row the cell's series
    // resistance and R_model the one the model's conductance implies: no cancellation between two
    // nearly equal conductances, so single precision keeps ~1e-7 of the (small) deviation itself.
    float dev[kLanes] = {0}, mod[kLanes] = {0};
    int64_t i = 0;
#ifdef HAMQ_HAVE_AVX512_INTRIN
    static_assert(kLanes == 16, "one zmm of floats per chunk");
    // The digits from the weights in registers (digit_of, lane by lane), the digit tables (16
    // entries, kernel_table.hpp) in registers: a permute per chunk, no gathers; lane l takes elements
    // i + l, the operations in the scalar order (no FMA): the same bits.
    if (n >= kLanes) {
        const __m512 v_inv = _mm512_loadu_ps(inv_g), v_gm = _mm512_loadu_ps(g_model), v_rm = _mm512_loadu_ps(r_model);
        const __m512 vr = _mm512_set1_ps(r);
        const __m512i floor = _mm512_set1_epi32(rule.floor), add = _mm512_set1_epi32(rule.add);
        const __m512i keep = _mm512_set1_epi32(int32_t(rule.keep)), mask = _mm512_set1_epi32(int32_t(rule.mask));
        const __m512i inv = _mm512_set1_epi32(int32_t(invert));
        const __m128i shift = _mm_cvtsi32_si128(rule.shift);
        const bool neg = rule.sign < 0;
        __m512 vdev = _mm512_setzero_ps(), vmod = _mm512_setzero_ps();
        for (; i + kLanes <= n; i += kLanes) {
            __m512i t = _mm512_loadu_si512(q + i);
            t = neg ? _mm512_sub_epi32(_mm512_setzero_si512(), t) : t;
            t = _mm512_and_si512(_mm512_add_epi32(_mm512_max_epi32(t, floor), add), keep);
            const __m512i d = _mm512_xor_si512(_mm512_and_si512(_mm512_srl_epi32(t, shift), mask), inv);
            const __m512 gm = _mm512_permutexvar_ps(d, v_gm), rr = _mm512_loadu_ps(r_row + i);
            const __m512 dr = _mm512_loadu_ps(drive + i);
            const __m512 rs = _mm512_add_ps(vr, rr);
            const __m512 qq = _mm512_div_ps(gm, _mm512_add_ps(_mm512_permutexvar_ps(d, v_inv), rs));
            const __m512 t2 = _mm512_mul_ps(qq, _mm512_sub_ps(_mm512_sub_ps(_mm512_permutexvar_ps(d, v_rm), vr), rr));
            vdev = _mm512_add_ps(vdev, _mm512_mul_ps(dr, t2));
            vmod = _mm512_add_ps(vmod, _mm512_mul_ps(dr, gm));
        }
        _mm512_storeu_ps(dev, vdev);
        _mm512_storeu_ps(mod, vmod);
    }
#elif defined(__AVX2__)
    static_assert(kLanes == 16, "two ymm of floats per chunk");
    // As above with two ymm per chunk (lanes 0-7 and 8-15, the same lanes): the 16-entry tables as
    // two halves, each permuted by the digit's low 3 bits and the half picked by its bit 3.
    if (n >= kLanes) {
        const __m256 inv_lo = _mm256_loadu_ps(inv_g), inv_hi = _mm256_loadu_ps(inv_g + 8);
        const __m256 gm_lo = _mm256_loadu_ps(g_model), gm_hi = _mm256_loadu_ps(g_model + 8);
        const __m256 rm_lo = _mm256_loadu_ps(r_model), rm_hi = _mm256_loadu_ps(r_model + 8);
        const __m256 vr = _mm256_set1_ps(r);
        const __m256i floor = _mm256_set1_epi32(rule.floor), add = _mm256_set1_epi32(rule.add);
        const __m256i keep = _mm256_set1_epi32(int32_t(rule.keep)), mask = _mm256_set1_epi32(int32_t(rule.mask));
        const __m256i inv = _mm256_set1_epi32(int32_t(invert));
        const __m128i shift = _mm_cvtsi32_si128(rule.shift);
        const bool neg = rule.sign < 0;
        auto lookup = [](__m256 lo, __m256 hi, __m256i d, __m256 upper) {
            return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, d), _mm256_permutevar8x32_ps(hi, d), upper);
        };
        __m256 vdev[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, vmod[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (; i + kLanes <= n; i += kLanes) {
            for (int h = 0; h < 2; ++h) {
                const int64_t e = i + 8 * h;
                __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + e));
                t = neg ? _mm256_sub_epi32(_mm256_setzero_si256(), t) : t;
                t = _mm256_and_si256(_mm256_add_epi32(_mm256_max_epi32(t, floor), add), keep);
                const __m256i d = _mm256_xor_si256(_mm256_and_si256(_mm256_srl_epi32(t, shift), mask), inv);
                const __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(d, 28));  // bit 3 to the sign
                const __m256 gm = lookup(gm_lo, gm_hi, d, upper), rr = _mm256_loadu_ps(r_row + e);
                const __m256 dr = _mm256_loadu_ps(drive + e);
                const __m256 rs = _mm256_add_ps(vr, rr);
                const __m256 qq = _mm256_div_ps(gm, _mm256_add_ps(lookup(inv_lo, inv_hi, d, upper), rs));
                const __m256 t2 = _mm256_mul_ps(qq, _mm256_sub_ps(_mm256_sub_ps(lookup(rm_lo, rm_hi, d, upper), vr), rr));
                vdev[h] = _mm256_add_ps(vdev[h], _mm256_mul_ps(dr, t2));
                vmod[h] = _mm256_add_ps(vmod[h], _mm256_mul_ps(dr, gm));
            }
        }
        for (int h = 0; h < 2; ++h) {
            _mm256_storeu_ps(dev + 8 * h, vdev[h]);
            _mm256_storeu_ps(mod + 8 * h, vmod[h]);
        }
    }
#endif
    for (; i + kLanes <= n; i += kLanes) {
        uint8_t dg[kLanes];
        for (int l = 0; l < kLanes; ++l) dg[l] = uint8_t(digit_of(q[i + l], rule) ^ invert);
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
            const uint8_t d = dg[l];
            const float gm = g_model[d], rs = r + r_row[i + l];
            dev[l] += drive[i + l] * (gm / (inv_g[d] + rs) * ((r_model[d] - r) - r_row[i + l]));
            mod[l] += drive[i + l] * gm;
        }
    }
    for (int l = 0; i < n; ++i, ++l) {
        const uint32_t d = digit_of(q[i], rule) ^ invert;
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
