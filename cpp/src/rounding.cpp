// HW-aware rounding of one layer (see rounding.hpp): validation, damping, the upper Cholesky factor
// of H^-1, then the dispatched per-row pass (kernels_impl.hpp round_rows).
#include "hamqcore/rounding.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cost_table.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

namespace hamq {

namespace {

// sum_p a[p] b[p] over p < n with 8 partial sums in a fixed order (vectorises without reassociation;
// the same bits on every tier and thread count).
inline double dot(const double* a, const double* b, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t p = 0;
    for (; p + 8 <= n; p += 8)
#pragma omp simd
        for (int l = 0; l < 8; ++l) acc[l] += a[p + l] * b[p + l];
    for (int l = 0; p < n; ++p, ++l) acc[l] += a[p] * b[p];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// In-place lower Cholesky factor of the symmetric positive definite n x n matrix a (row-major; the
// strict upper triangle is left as it was). Row-oriented (Cholesky-Banachiewicz): row i of L from the
// rows before it, every entry a dot product over contiguous memory. One thread: a parallel region per
// row costs more than the n^3/3 multiply-adds it would share. Returns false when a pivot is not > 0.
bool cholesky_lower(double* a, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        double* ai = a + i * n;
        for (int64_t j = 0; j < i; ++j) {
            const double* aj = a + j * n;
            ai[j] = (ai[j] - dot(ai, aj, j)) / aj[j];
        }
        const double d = ai[i] - dot(ai, ai, i);
        if (!(d > 0.0) || !std::isfinite(d)) return false;
        ai[i] = std::sqrt(d);
    }
    return true;
}

}  // namespace

RoundingStatus hw_aware_round(const double* w, int64_t rows, int64_t k, const double* h,
                              const double* scale, const double* row_weight, int bits, Encoding e,
                              double lam, int radius, double damp, BitCost bit_cost, int32_t* q,
                              int n_threads) {
    RoundingStatus st;
    for (int64_t i = 0; i < rows * k; ++i)
        if (!std::isfinite(w[i])) {
            st.bad_w = i;
            return st;
        }
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            const double a = h[i * k + j], b = h[j * k + i];
            if (!std::isfinite(a) || !std::isfinite(b) || std::fabs(a - b) > 1e-9 * (std::fabs(a) + std::fabs(b)) ||
                (i == j && a < 0)) {
                st.bad_h = i * k + j;
                return st;
            }
        }
    for (int64_t r = 0; r < rows; ++r)
        if (!(scale[r] > 0.0) || !std::isfinite(scale[r]) || !std::isfinite(1.0 / scale[r])) {
            st.bad_scale = r;
            return st;
        }
    for (int64_t r = 0; r < rows; ++r)
        if (!(row_weight[r] >= 0.0) || !std::isfinite(row_weight[r])) {
            st.bad_row_weight = r;
            return st;
        }
    if (rows == 0 || k == 0) return st;
    // Dead inputs: H_ii = 1 and their weights start at 0. Damping: damp * mean(diag H).
    std::vector<uint8_t> dead(static_cast<size_t>(k), 0);
    double diag = 0.0;
    for (int64_t i = 0; i < k; ++i) {
        dead[size_t(i)] = h[i * k + i] == 0.0;
        st.dead_inputs += dead[size_t(i)];
        diag += dead[size_t(i)] ? 1.0 : h[i * k + i];
    }
    const double mean_diag = diag / double(k);
    // B = J H J (the order of the inputs reversed), damped; B = R R^T gives H = M M^T with the upper
    // M = J R J, and U = M^-1 = J R^-1 J is the upper factor with H^-1 = U^T U.
    std::vector<double> b(static_cast<size_t>(k * k));
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) {
            const int64_t si = k - 1 - i, sj = k - 1 - j;
            double v = dead[size_t(si)] || dead[size_t(sj)] ? (si == sj ? 1.0 : 0.0) : h[si * k + sj];
            if (i == j) v += damp * mean_diag;
            b[size_t(i * k + j)] = v;
        }
    if (!cholesky_lower(b.data(), k)) {
        st.not_psd = true;
        return st;
    }
    // Column c of R^-1 by forward substitution (R y = e_c, y_i = 0 for i < c), stored as row c of
    // rinv_t; columns in parallel.
    std::vector<double> rinv_t(static_cast<size_t>(k * k), 0.0);
#pragma omp parallel for num_threads(threads_for(k * k * k, n_threads)) schedule(dynamic, 4)
    for (int64_t c = 0; c < k; ++c) {
        double* y = rinv_t.data() + c * k;
        y[c] = 1.0 / b[size_t(c * k + c)];
        for (int64_t i = c + 1; i < k; ++i) {
            const double* ri = b.data() + i * k;
            y[i] = -dot(ri + c, y + c, i - c) / ri[i];
        }
    }
    // U[a][c] = R^-1[k-1-a][k-1-c] = rinv_t[k-1-c][k-1-a] for c >= a.
    std::vector<double> u(static_cast<size_t>(k * k), 0.0);
    for (int64_t a = 0; a < k; ++a)
        for (int64_t c = a; c < k; ++c) u[size_t(a * k + c)] = rinv_t[size_t((k - 1 - c) * k + (k - 1 - a))];
    std::vector<double> code_cost, table(static_cast<size_t>(2 * level_max(bits) + 1));
    build_cost_table(bit_cost.cost, bits, e, code_cost, table.data());
    RoundRowsArgs args;
    args.w = w;
    args.scale = scale;
    args.u = u.data();
    args.table = table.data();
    args.rows = rows;
    args.k = k;
    args.bits = bits;
    args.radius = radius;
    args.lam = lam;
    args.row_weight = row_weight;
    args.q = q;
    args.n_threads = n_threads;
    active_kernels().round_rows(args);
    return st;
}

}  // namespace hamq
