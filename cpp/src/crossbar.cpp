#include "hamqcore/crossbar.hpp"

#include <cmath>
#include <string>

#include "kernel_table.hpp"

namespace hamq {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Calls f(const T*) with the array's element type.
template <class F>
auto visit_int(IntType t, const void* p, F&& f) {
    switch (t) {
        case IntType::I8: return f(static_cast<const int8_t*>(p));
        case IntType::I16: return f(static_cast<const int16_t*>(p));
        case IntType::I32: return f(static_cast<const int32_t*>(p));
        case IntType::I64: default: return f(static_cast<const int64_t*>(p));
    }
}

// Digits per stored weight and columns per output group for a mapping.
int digits(const CrossbarConfig& c, int w_bits) {
    const int m = c.mapping == Mapping::Differential ? w_bits - 1 : w_bits;
    return (m + c.cell_bits - 1) / c.cell_bits;
}

// Outputs that fit in one array (0 when not even one does).
int64_t outputs_per_array(const CrossbarConfig& c, int w_bits) {
    const int64_t per = c.cols / digits(c, w_bits);
    return c.mapping == Mapping::Differential ? per : per - 1;  // offset: room for the reference
}

double adc_power(const CrossbarConfig& c, double g_col) {
    const double L = std::ldexp(1.0, c.adc_bits);
    const double dyn = g_col > 0 ? std::exp(-2.311 * std::log10(0.5 / (g_col * c.v_read))) : 0.0;
    if (c.adc == AdcKind::Multilevel) return 1.8939e-6 * (L - 1) + 0.073 * dyn;
    return (0.7213 * std::log2(L) + 3.3041) * 1e-6 + 0.084273 * dyn;  // SAR
}

double adc_conversion_energy(const CrossbarConfig& c, double g_col) {
    if (c.adc == AdcKind::Multilevel) return adc_power(c, g_col) * c.t_read;
    return adc_power(c, g_col) * (c.adc_bits + 1) * 1e-9;  // SAR: adc_bits + 1 cycles of 1 ns
}

}  // namespace

std::string validate(const CrossbarConfig& c) {
    auto num = [](double v) {
        std::string s = std::to_string(v);
        return s;
    };
    if (c.rows <= 0) return "rows must be > 0, got " + std::to_string(c.rows);
    if (c.cols <= 0) return "cols must be > 0, got " + std::to_string(c.cols);
    if (c.cell_bits != 1 && c.cell_bits != 2 && c.cell_bits != 4)
        return "cell_bits must be one of 1, 2, 4, got " + std::to_string(c.cell_bits);
    if (!(c.g_off >= 0) || !std::isfinite(c.g_off))
        return "g_off must be a finite conductance >= 0, got " + num(c.g_off);
    if (!(c.g_on > c.g_off) || !std::isfinite(c.g_on))
        return "g_on must be finite and greater than g_off (" + num(c.g_off) + "), got " + num(c.g_on);
    if (!(c.v_read > 0) || !std::isfinite(c.v_read))
        return "v_read must be > 0, got " + num(c.v_read);
    if (!(c.t_read > 0) || !std::isfinite(c.t_read))
        return "t_read must be > 0, got " + num(c.t_read);
    if (c.adc != AdcKind::Ideal && (c.adc_bits < 1 || c.adc_bits > 16))
        return "adc_bits must be in 1..16, got " + std::to_string(c.adc_bits);
    if (c.cols_per_adc < 1) return "cols_per_adc must be >= 1, got " + std::to_string(c.cols_per_adc);
    if (c.adc_full_scale < 0)
        return "adc_full_scale must be >= 0 (0 = rows * (2^cell_bits - 1)), got " +
               std::to_string(c.adc_full_scale);
    if (!(c.e_wordline >= 0) || !std::isfinite(c.e_wordline))
        return "e_wordline must be >= 0, got " + num(c.e_wordline);
    if (!(c.e_shift_add >= 0) || !std::isfinite(c.e_shift_add))
        return "e_shift_add must be >= 0, got " + num(c.e_shift_add);
    // One array must hold the widest weight the simulator accepts (16 bits): checked per layer.
    return "";
}

std::string validate_layer(const CrossbarConfig& c, int w_bits, int a_bits) {
    if (w_bits < kMinBits || w_bits > kMaxBits)
        return "w_bits must be an integer in 2..16, got " + std::to_string(w_bits);
    if (a_bits < 1 || a_bits > 16) return "a_bits must be an integer in 1..16, got " + std::to_string(a_bits);
    if (outputs_per_array(c, w_bits) < 1)
        return "cols=" + std::to_string(c.cols) + " cannot hold one " + std::to_string(w_bits) +
               "-bit weight (" + std::to_string(digits(c, w_bits)) + " digit columns" +
               (c.mapping == Mapping::Offset ? " plus as many reference columns" : "") + ")";
    return "";
}

Crossbar::Crossbar(const CrossbarConfig& config) : cfg_(config) {
    const int64_t dmax = (int64_t(1) << cfg_.cell_bits) - 1;
    s_stride_ = int64_t(cfg_.rows) * dmax + 1;
    const double g_step = (cfg_.g_on - cfg_.g_off) / double(dmax);
    if (cfg_.adc != AdcKind::Ideal) {
        adc_energy_.assign(size_t((cfg_.rows + 1) * s_stride_), 0.0);
        for (int64_t nd = 0; nd <= cfg_.rows; ++nd)
            for (int64_t s = 0; s <= nd * dmax; ++s)  // larger sums cannot occur with nd rows
                adc_energy_[size_t(nd * s_stride_ + s)] =
                    adc_conversion_energy(cfg_, cfg_.g_off * double(nd) + g_step * double(s));
        const int64_t L = int64_t(1) << cfg_.adc_bits;
        const int64_t fs = cfg_.adc_full_scale > 0 ? cfg_.adc_full_scale : s_stride_ - 1;
        if (fs > L - 1) {  // lossy: quantise the digit sum
            const double step = double(fs) / double(L - 1);
            adc_level_.resize(size_t(s_stride_));
            for (int64_t s = 0; s < s_stride_; ++s) {
                double level = std::nearbyint(double(s) / step);
                level = level > double(L - 1) ? double(L - 1) : level;
                adc_level_[size_t(s)] = step * level;
            }
        }
    }
}

CrossbarResult Crossbar::simulate(const CrossbarLayer& L, int n_threads) const {
    const CrossbarConfig& c = cfg_;
    CrossbarResult r;
    r.bad_w = visit_int(L.w_type, L.w, [&](auto* w) { return first_out_of_range(w, L.out * L.k, L.w_bits); });
    const int64_t x_lo = L.a_signed ? -(int64_t(1) << (L.a_bits - 1)) : 0;
    const int64_t x_hi = L.a_signed ? (int64_t(1) << (L.a_bits - 1)) - 1 : (int64_t(1) << L.a_bits) - 1;
    r.bad_x = visit_int(L.x_type, L.x, [&](auto* x) -> int64_t {
        for (int64_t i = 0; i < L.n * L.k; ++i)
            if (int64_t(x[i]) < x_lo || int64_t(x[i]) > x_hi) return i;
        return -1;
    });
    if (r.bad_w >= 0 || r.bad_x >= 0) return r;

    const bool diff = c.mapping == Mapping::Differential;
    const int D = digits(c, L.w_bits), cb = c.cell_bits, P = L.a_bits;
    const int64_t R = c.rows, T = ceil_div(L.k, R), WPT = ceil_div(R, 64);
    const int64_t cpg = diff ? 2 * D : D;                 // columns per output group
    const int64_t G = L.out + (diff ? 0 : 1);             // + reference group for offset
    const int64_t ld = G * cpg * cb;                      // weight planes per row word
    const uint64_t dmask = (uint64_t(1) << cb) - 1;
    const int64_t half = int64_t(1) << (L.w_bits - 1);
    r.pulses = P;
    r.row_tiles = T;
    r.col_tiles = L.out > 0 ? ceil_div(L.out, outputs_per_array(c, L.w_bits)) : 0;
    r.arrays = T * r.col_tiles * (diff ? 2 : 1);
    r.columns = diff ? cpg * L.out : D * (L.out + r.col_tiles);
    r.cells = r.columns * L.k;
    r.latency = double(L.n) * P * c.cols_per_adc * c.t_read;
    if (L.out == 0) {  // nothing is stored: no arrays, no conversions
        r.columns = r.cells = 0;
        r.latency = 0;
        return r;
    }

    // Row blocks of up to 64 rows that never cross a row-tile boundary: block i covers rows
    // [start, end) = word (start % R) / 64 of row tile start / R.
    std::vector<int64_t> block_starts;
    for (int64_t t = 0; t < T; ++t)
        for (int64_t row = t * R; row < (t + 1) * R && row < L.k; row += 64) block_starts.push_back(row);
    auto block_end = [&](int64_t r0) {
        const int64_t tile_end = (r0 / R + 1) * R;
        const int64_t e = r0 + 64 < tile_end ? r0 + 64 : tile_end;
        return e < L.k ? e : L.k;
    };
    auto block_word = [&](int64_t r0) { return (r0 / R) * WPT + (r0 % R) / 64; };
    const auto transpose = active_kernels().transpose_bits;
    const int sb = D * cb;  // code bits held by one array's digit columns

    // Weight bit-planes [T][WPT][G][cpg][cb]: the codes of 64 rows of one group are bit-transposed
    // into the group's plane words (plane (array * D + d) * cb + j holds bit j of digit d).
    // ON cells = nonzero digits = set bits of the OR of each digit's cb planes.
    std::vector<uint64_t> wp(size_t(T * WPT * ld), 0);
    auto pack_group = [&](int64_t g, int64_t r0, const uint16_t* codes /*[2][64]*/) {
        uint64_t* dst = wp.data() + block_word(r0) * ld + g * cpg * cb;
        int64_t on = 0;
        for (int arr = 0; arr < (diff ? 2 : 1); ++arr) {
            transpose(codes + 64 * arr, sb, dst + arr * sb);
            for (int d = 0; d < D; ++d) {
                uint64_t any = 0;
                for (int j = 0; j < cb; ++j) any |= dst[arr * sb + d * cb + j];
                on += __builtin_popcountll(any);
            }
        }
        return on;
    };
    int64_t on_cells = 0;
    visit_int(L.w_type, L.w, [&](auto* w) {
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(+ : on_cells) if (L.out * L.k > 16384)
        for (int64_t o = 0; o < L.out; ++o) {
            uint16_t codes[128];
            for (int64_t r0 : block_starts) {
                const int64_t r1 = block_end(r0);
                for (int i = 0; i < 128; ++i) codes[i] = 0;
                for (int64_t row = r0; row < r1; ++row) {
                    const int64_t q = int64_t(w[o * L.k + row]);
                    if (diff) codes[(q < 0 ? 64 : 0) + (row - r0)] = uint16_t(q < 0 ? -q : q);
                    else codes[row - r0] = uint16_t(q + half);
                }
                on_cells += pack_group(o, r0, codes);
            }
        }
        return 0;
    });
    if (!diff) {  // reference group: the code of q = 0 in every row, one copy per array
        int64_t on_ref = 0;
        uint16_t codes[128] = {0};
        for (int64_t r0 : block_starts) {
            const int64_t r1 = block_end(r0);
            for (int i = 0; i < 64; ++i) codes[i] = r0 + i < r1 ? uint16_t(half) : 0;
            on_ref += pack_group(L.out, r0, codes);
        }
        on_cells += on_ref * r.col_tiles;
    }
    r.on_cells = on_cells;

    // Input bit-planes [N][T][P][WPT] (two's complement codes for signed inputs); total driven
    // rows over all pulses.
    std::vector<uint64_t> xp(size_t(L.n * T * P * WPT), 0);
    const uint64_t amask = (uint64_t(1) << P) - 1;
    int64_t driven = 0;
    visit_int(L.x_type, L.x, [&](auto* x) {
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(+ : driven) if (L.n * L.k > 16384)
        for (int64_t n = 0; n < L.n; ++n) {
            uint16_t codes[64];
            uint64_t planes[16];
            for (int64_t r0 : block_starts) {
                const int64_t r1 = block_end(r0);
                for (int i = 0; i < 64; ++i) codes[i] = 0;
                for (int64_t row = r0; row < r1; ++row)
                    codes[row - r0] = uint16_t(uint64_t(int64_t(x[n * L.k + row])) & amask);
                transpose(codes, P, planes);
                const int64_t t = r0 / R, wd = (r0 % R) / 64;
                for (int p = 0; p < P; ++p) {
                    xp[size_t(((n * T + t) * P + p) * WPT + wd)] = planes[p];
                    driven += __builtin_popcountll(planes[p]);
                }
            }
        }
        return 0;
    });

    std::vector<double> plane_coef(static_cast<size_t>(P)), col_coef(static_cast<size_t>(cpg));
    for (int p = 0; p < P; ++p) plane_coef[size_t(p)] = std::ldexp(1.0, p);
    if (L.a_signed) plane_coef[size_t(P - 1)] = -std::ldexp(1.0, P - 1);
    for (int64_t col = 0; col < cpg; ++col)
        col_coef[size_t(col)] = (col >= D ? -1.0 : 1.0) * std::ldexp(1.0, int(col % D) * cb);
    std::vector<int64_t> mult(size_t(G), 1);
    if (!diff) mult[size_t(L.out)] = r.col_tiles;

    const double g_step = (c.g_on - c.g_off) / double(dmask);
    std::vector<double> y(size_t(L.n * G), 0.0);
    double adc_sum = 0.0, g_max = 0.0;
    uint64_t digit_sum = 0;
    XbarPopcountArgs a;
    a.n_vectors = L.n;
    a.n_tiles = int(T);
    a.words_per_tile = int(WPT);
    a.a_planes = P;
    a.cell_bits = cb;
    a.n_groups = G;
    a.cols_per_group = int(cpg);
    a.x = xp.data();
    a.w = wp.data();
    a.plane_coef = plane_coef.data();
    a.col_coef = col_coef.data();
    a.group_mult = mult.data();
    a.adc_energy = adc_energy_.empty() ? nullptr : adc_energy_.data();
    a.adc_level = adc_level_.empty() ? nullptr : adc_level_.data();
    a.s_stride = s_stride_;
    a.g_leak = c.g_off;
    a.g_step = g_step;
    a.n_threads = n_threads;
    a.y = y.data();
    a.adc_energy_sum = &adc_sum;
    a.digit_sum = &digit_sum;
    a.max_conductance = &g_max;
    if (L.n > 0 && G > 0 && T > 0) active_kernels().xbar_popcount(a);

    r.y.assign(size_t(L.n * L.out), 0.0);
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t o = 0; o < L.out; ++o)
            r.y[size_t(n * L.out + o)] = y[size_t(n * G + o)] - (diff ? 0.0 : y[size_t(n * G + L.out)]);

    // Every used column converts once per vector, pulse and row tile (the last row tile too,
    // even when it is only partly filled).
    r.conversions = L.n * P * T * r.columns;
    // sum over conversions of G_col: each column of row tile t sees that tile's driven rows
    const double sum_g = c.g_off * double(driven) * double(r.columns) + g_step * double(digit_sum);
    r.sum_current = c.v_read * sum_g;
    r.max_current = c.v_read * g_max;
    r.e_cell = c.v_read * c.v_read * c.t_read * sum_g;
    r.e_adc = adc_sum;
    r.e_wordline = c.e_wordline * double(driven) * double(r.col_tiles * (diff ? 2 : 1));
    r.e_shift_add = c.e_shift_add * double(r.conversions);
    return r;
}

}  // namespace hamq
