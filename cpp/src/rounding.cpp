// HW-aware rounding of one layer (see rounding.hpp): validation and damping here; the upper Cholesky
// factor of H^-1 and the per-row pass are dispatched (kernels_impl.hpp factor_upper, round_rows).
#include "hamqcore/rounding.hpp"

#include <cmath>
#include <vector>

#include "cost_table.hpp"
#include "kernel_table.hpp"

namespace hamq {

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
    std::vector<double> u(static_cast<size_t>(k * k));
    if (!active_kernels().factor_upper(b.data(), k, u.data(), n_threads)) {
        st.not_psd = true;
        return st;
    }
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

int64_t quantize_rows(const float* w, int64_t rows, int64_t k, int bits, const float* step_in, float* step_out,
                      int16_t* q, int n_threads) {
    return active_kernels().quantize_rows_f32(w, rows, k, bits, step_in, step_out, q, n_threads);
}

int64_t quantize_rows(const double* w, int64_t rows, int64_t k, int bits, const double* step_in,
                      double* step_out, int16_t* q, int n_threads) {
    return active_kernels().quantize_rows_f64(w, rows, k, bits, step_in, step_out, q, n_threads);
}

void fake_quantize(const float* x, int64_t n, float step, float lo, float hi, float* y, int n_threads) {
    active_kernels().fake_quantize_f32(x, n, step, lo, hi, y, n_threads);
}

void fake_quantize(const double* x, int64_t n, double step, double lo, double hi, double* y, int n_threads) {
    active_kernels().fake_quantize_f64(x, n, step, lo, hi, y, n_threads);
}

void fake_quantize_backward(const float* x, const float* g, int64_t n, float step, float lo, float hi, float* gx,
                            int n_threads) {
    active_kernels().fake_quantize_backward_f32(x, g, n, step, lo, hi, gx, n_threads);
}

void fake_quantize_backward(const double* x, const double* g, int64_t n, double step, double lo, double hi,
                            double* gx, int n_threads) {
    active_kernels().fake_quantize_backward_f64(x, g, n, step, lo, hi, gx, n_threads);
}

float abs_max(const float* x, int64_t n, int n_threads) { return active_kernels().abs_max_f32(x, n, n_threads); }

double abs_max(const double* x, int64_t n, int n_threads) { return active_kernels().abs_max_f64(x, n, n_threads); }

}  // namespace hamq
