// Included by kernels_impl.hpp only, inside its per-ISA anonymous namespace (compiled once per tier).
// HW-aware rounding: the inverse-Hessian factor and the error-feedback pass over rows.
#pragma once
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

// rounding.hpp quantize_rows: per row, the max step (without step_in), then every weight divided by
// the step, rounded half to even (nearbyint in the default rounding mode) and clamped; rows in
// parallel, each in one thread (no reduction crosses threads: the same bits for any n_threads).
template <class T>
int64_t quantize_rows_impl(const T* w, int64_t rows, int64_t k, int bits, const T* step_in, T* step_out, int16_t* q,
                           int n_threads) {
    const T qmax = T((int64_t(1) << (bits - 1)) - 1);
    const T big = std::numeric_limits<T>::max();
    std::vector<uint8_t> row_ok(size_t(rows), 1);   // every weight of the row finite
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * k, n_threads))
    for (int64_t r = 0; r < rows; ++r) {
        const T* wr = w + r * k;
        T s;
        if (step_in) {
            s = step_in[r];
        } else {
            T m = T(0);
#pragma omp simd reduction(max : m)
            for (int64_t i = 0; i < k; ++i) {
                const T a = std::fabs(wr[i]);
                m = a > m ? a : m;
            }
            s = m > T(0) ? m / qmax : T(1);
        }
        step_out[r] = s;
        int16_t* qr = q + r * k;
        int ok = 1;
#pragma omp simd reduction(min : ok)
        for (int64_t i = 0; i < k; ++i) {
            const T x = wr[i];
            ok = std::fabs(x) <= big ? ok : 0;      // NaN and inf fail
            T v = std::nearbyint(x / s);
            v = v < -qmax ? -qmax : v;
            v = v > qmax ? qmax : v;
            qr[i] = ok ? int16_t(int32_t(v)) : int16_t(0);
        }
        row_ok[size_t(r)] = uint8_t(ok);
    }
    for (int64_t r = 0; r < rows; ++r)       // the first non-finite weight, or -1
        if (!row_ok[size_t(r)])
            for (int64_t i = 0; i < k; ++i)
                if (!(std::fabs(w[r * k + i]) <= big)) return r * k + i;
    return -1;
}

// rounding.hpp fake_quantize: y = clamp(round(x / step), lo, hi) * step, element by element in T's
// IEEE arithmetic (no contraction, round half to even); NaN stays NaN (the clamp's compares are false).
template <class T>
void fake_quantize_impl(const T* x, int64_t n, T step, T lo, T hi, T* y, int n_threads) {
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n, n_threads))
    for (int64_t i = 0; i < n; ++i) {
        T v = std::nearbyint(x[i] / step);
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        y[i] = v * step;
    }
}

// The floats x for which lo <= round(x / step) <= hi, in T's arithmetic (round half to even): the
// interval [x_lo, x_hi] of finite floats (x_lo > x_hi when there is none; never an infinity or NaN).
// x -> round(x / step) is non-decreasing for step > 0 (correctly rounded division and rounding are
// monotone), so each bound is where a monotone test flips: found by bisection over the finite floats
// in their order (the bit patterns mapped to ordered unsigned keys), with the division itself.
// step > 0 is the caller's (rounding.hpp); any step terminates.
template <class T>
void grid_interval(T step, T lo, T hi, T& x_lo, T& x_hi) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    constexpr U sign = U(1) << (8 * sizeof(T) - 1);
    const auto key = [](T x) { U b; std::memcpy(&b, &x, sizeof b); return (b & sign) ? U(~b) : U(b | sign); };
    const auto val = [](U k) { const U b = (k & sign) ? U(k & ~sign) : U(~k); T x; std::memcpy(&x, &b, sizeof x); return x; };
    const auto round_q = [&](T x) { return std::nearbyint(x / step); };
    const U first = key(-std::numeric_limits<T>::max()), last = key(std::numeric_limits<T>::max());
    // the first finite float (as its key) that passes a test false then true along the floats; last + 1: none
    const auto first_passing = [&](auto test) {
        U a = first, b = last + 1;
        while (a < b) {
            const U m = a + (b - a) / 2;
            if (test(val(m))) b = m; else a = m + 1;
        }
        return a;
    };
    const U k_lo = first_passing([&](T x) { return round_q(x) >= lo; });
    const U k_out = first_passing([&](T x) { return round_q(x) > hi; });  // the first above the grid
    if (k_lo > last || k_out == first) {  // no float reaches lo, or every float is above hi
        x_lo = std::numeric_limits<T>::max();
        x_hi = -std::numeric_limits<T>::max();
        return;
    }
    x_lo = val(k_lo);
    x_hi = val(k_out - 1);
}

// rounding.hpp fake_quantize_backward: the straight-through gradient, as autograd takes it through
// the forward's operations: (g * step) / step where lo <= round(x / step) <= hi, else 0. The test on
// x is two compares with grid_interval's bounds (the same truth for every x, NaN and infinities
// included, as the division and rounding it replaces); the gradient's own division stays (its bits).
template <class T>
void fake_quantize_backward_impl(const T* x, const T* g, int64_t n, T step, T lo, T hi, T* gx, int n_threads) {
    T x_lo, x_hi;
    grid_interval(step, lo, hi, x_lo, x_hi);
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n, n_threads))
    for (int64_t i = 0; i < n; ++i) {
        const bool in = x[i] >= x_lo && x[i] <= x_hi;
        gx[i] = in ? (g[i] * step) / step : T(0);
    }
}

// rounding.hpp abs_max: max |x[i]|, NaN when any x[i] is NaN, 0 for n = 0. Per-thread maxima of
// contiguous chunks, combined after: the max is exact, so any n_threads gives the same value.
template <class T>
T abs_max_impl(const T* x, int64_t n, int n_threads) {
    T m = T(0);
    int nan = 0;
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n, n_threads)) reduction(max : m) \
    reduction(max : nan)
    for (int64_t i = 0; i < n; ++i) {
        const T a = std::fabs(x[i]);
        m = a > m ? a : m;
        nan = a != a ? 1 : nan;
    }
    return nan ? std::numeric_limits<T>::quiet_NaN() : m;
}
