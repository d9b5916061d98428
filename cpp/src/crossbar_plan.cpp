// Crossbar::simulate, stage 1: the input checks and the plan (crossbar_stages.hpp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "crossbar_stages.hpp"
#include "threading.hpp"

namespace hamq::xbar {

namespace {

// The index of the first element of v[0, n) outside [lo, hi], or -1: each block's min and max
// (vectorised reductions; blocks in parallel), the index searched only in the first block that has
// one. Compared in T itself where T is at most 16 bits (the bounds clamped to T's range; none
// outside it: nothing to scan), else in int64.
template <class T>
int64_t first_outside(const T* v, int64_t n, int64_t lo, int64_t hi, int n_threads) {
    using C = std::conditional_t<(sizeof(T) <= 2), T, int64_t>;
    constexpr int64_t tmin = int64_t(std::numeric_limits<C>::min()), tmax = int64_t(std::numeric_limits<C>::max());
    if (lo <= tmin && hi >= tmax) return -1;  // every value of T is inside
    const C clo = C(std::max(lo, tmin)), chi = C(std::min(hi, tmax));
    constexpr int64_t kBlock = 4096;
    const int64_t nb = ceil_div(n, kBlock);
    std::vector<uint8_t> bad(size_t(nb), 0);
#pragma omp parallel for num_threads(threads_for(n, n_threads)) schedule(static)
    for (int64_t b = 0; b < nb; ++b) {
        const int64_t b0 = b * kBlock, b1 = b0 + kBlock < n ? b0 + kBlock : n;
        C mn = std::numeric_limits<C>::max(), mx = std::numeric_limits<C>::min();
#pragma omp simd reduction(min : mn) reduction(max : mx)
        for (int64_t i = b0; i < b1; ++i) {
            const C x = C(v[i]);
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
        }
        bad[size_t(b)] = uint8_t(mn < clo || mx > chi);
    }
    for (int64_t b = 0; b < nb; ++b)
        if (bad[size_t(b)])
            for (int64_t i = b * kBlock; i < n; ++i)
                if (int64_t(v[i]) < lo || int64_t(v[i]) > hi) return i;
    return -1;
}

}  // namespace

void check_ranges(const CrossbarConfig& c, const CrossbarLayer& L, int n_threads, CrossbarResult& r) {
    const int64_t w_lo = mapping_level_min(c.mapping, L.w_bits), w_hi = mapping_level_max(c.mapping, L.w_bits);
    r.bad_w = visit_int(L.w_type, L.w, [&](auto* w) { return first_outside(w, L.out * L.k, w_lo, w_hi, n_threads); });
    const int64_t x_lo = L.a_signed ? -(int64_t(1) << (L.a_bits - 1)) : 0;
    const int64_t x_hi = L.a_signed ? (int64_t(1) << (L.a_bits - 1)) - 1 : (int64_t(1) << L.a_bits) - 1;
    r.bad_x = visit_int(L.x_type, L.x, [&](auto* x) { return first_outside(x, L.n * L.k, x_lo, x_hi, n_threads); });
}

void Plan::place(int64_t kc, int64_t& col_tile, int64_t& local) const {
    const int64_t g = kc / cpg, d = (kc % cpg) % D;
    if (g == L.out) {
        col_tile = -1;
        local = cols_eff + (D - 1 - d);
        return;
    }
    const int64_t pos = c.column_order == ColumnOrder::Digit ? (D - 1 - d) * L.out + g : g * D + (D - 1 - d);
    col_tile = pos / cols_eff;
    local = pos % cols_eff;
}

Plan make_plan(const CrossbarConfig& c, const CrossbarLayer& L, int n_threads, CrossbarResult& r) {
    Plan p{c, L, n_threads};
    p.map = c.mapping;
    p.A = mapping_arrays(p.map);
    p.D = mapping_digits(p.map, L.w_bits, c.cell_bits);
    p.cb = c.cell_bits;
    p.P = L.a_bits;
    p.PC = p.cb == 2 ? 3 : p.cb;
    p.b = L.w_bits;
    p.ref = c.reference_column;
    p.R = c.rows;
    p.K = L.k;
    p.TA = ceil_div(p.K, p.R);
    p.cols_eff = c.cols - (p.ref ? p.D : 0);
    p.wcols = L.out * p.D;
    p.col_tiles = p.wcols > 0 ? ceil_div(p.wcols, p.cols_eff) : 0;
    r.pulses = p.P;
    r.row_tiles = p.TA;
    r.col_tiles = p.col_tiles;
    r.arrays = p.TA * p.col_tiles * p.A;
    r.columns = p.A * p.wcols + (p.ref ? p.D * p.col_tiles : 0);
    r.cells = r.columns * p.K;
    // Conversion groups ("tiles" of the kernel): rows_per_conversion rows of one array row tile.
    p.RC = c.rows_per_conversion > 0 && c.rows_per_conversion < p.R ? c.rows_per_conversion : p.R;
    for (int64_t t = 0; t < p.TA; ++t)
        for (int64_t r0 = t * p.R; r0 < (t + 1) * p.R && r0 < p.K; r0 += p.RC) {
            p.tc_row0.push_back(r0);
            p.tc_rows.push_back(std::min({p.RC, (t + 1) * p.R - r0, p.K - r0}));
            p.tc_tile.push_back(t);
        }
    p.T = int64_t(p.tc_row0.size());
    p.WPT = ceil_div(p.RC, 64);
    p.cpg = int64_t(p.A) * p.D;
    p.G = L.out + (p.ref ? 1 : 0);  // + the reference group
    p.ncols = p.G * p.cpg;
    p.ld = p.ncols * p.cb;          // weight planes per row word: [cb][ncols]
    p.dmask = (uint64_t(1) << p.cb) - 1;
    p.half = int64_t(1) << (p.b - 1);
    for (int arr = 0; arr < p.A; ++arr)
        for (int d = 0; d < p.D; ++d) p.rules.push_back(digit_rule(p.map, arr, d, p.D, p.cb, p.b));
    p.m = std::min<int64_t>(c.cols_per_adc, c.cols);
    p.narr = p.col_tiles * p.A;
    for (int64_t tc = 0; tc < p.T; ++tc) {
        const int64_t first = p.tc_row0[size_t(tc)], end = first + p.tc_rows[size_t(tc)];
        for (int64_t r0 = first; r0 < end; r0 += 64) p.blocks.push_back({tc, (r0 - first) / 64, r0, std::min(r0 + 64, end)});
    }
    p.col_coef = digit_coefficients(p.map, p.b, p.cb);
    return p;
}

}  // namespace hamq::xbar

namespace hamq {

std::vector<double> digit_coefficients(Mapping m, int w_bits, int cell_bits) {
    const int A = mapping_arrays(m), D = mapping_digits(m, w_bits, cell_bits);
    std::vector<double> coef(size_t(A * D));
    for (int arr = 0; arr < A; ++arr)
        for (int d = 0; d < D; ++d) {
            double c = std::ldexp(1.0, d * cell_bits);
            if (m == Mapping::Differential && arr == 1) c = -c;
            if (m == Mapping::TwosComplement && d == D - 1) c = -std::ldexp(1.0, w_bits - 1);
            coef[size_t(arr * D + d)] = c;
        }
    return coef;
}

void stored_digits(IntType w_type, const void* w, int64_t out, int64_t k, int w_bits, Mapping m, int cell_bits,
                   uint8_t* digits) {
    const int A = mapping_arrays(m), D = mapping_digits(m, w_bits, cell_bits);
    xbar::visit_int(w_type, w, [&](auto* wp) {
        for (int arr = 0; arr < A; ++arr)
            for (int d = 0; d < D; ++d)
                xbar::extract_digits(wp, out * k, m, arr, d, D, cell_bits, w_bits, digits + (int64_t(arr) * D + d) * out * k);
        return 0;
    });
}

}  // namespace hamq
