// Crossbar::simulate, stage 5: the kernel (a binary GEMM over the packed planes) with what the
// columns read through their ADCs, and the layer's functional output (crossbar_stages.hpp).
#include <algorithm>
#include <cmath>

#include "crossbar_stages.hpp"
#include "kernel_table.hpp"

namespace hamq::xbar {

double adc_step(int64_t full_scale, int64_t levels) {
    const double step = double(full_scale) / double(levels - 1);
    return step > 1.0 ? step : 1.0;
}

double adc_reading(int64_t s, double step, int64_t levels) {
    return step * ladder_level(double(s) / step, double(levels - 1));
}

KernelSums run_kernel(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in,
                      Conductance& cond, const std::vector<double>& adc_level, int64_t s_stride, CrossbarResult& r) {
    const CrossbarConfig& c = p.c;
    const CrossbarLayer& L = p.L;
    // Per (group, column): its levels over its full scale (per-column resolution: its largest digit
    // sum), exact when a unit step covers every sum the column can read.
    std::vector<double> col_step, col_lmax;
    const int64_t fs_fixed = c.adc_full_scale > 0 ? c.adc_full_scale : p.RC * int64_t(p.dmask);
    const bool hist_mode = L.histogram_bins_per_unit > 0;  // calibration: ADC inputs binned, not read
    const bool cond_read = L.output && L.conductance;      // readings from the cells' conductances
    const bool cond_units = (L.output || hist_mode) && L.conductance;  // ADC inputs in conductance units
    std::vector<double> g_digit;   // conductance readout: each digit's conductance in digit units
    if (cond_units) {
        g_digit = digit_conductances(c);
        const double unit = (g_digit.back() - g_digit.front()) / double(p.dmask);
        for (double& g : g_digit) g /= unit;
    }
    // Per-column reference of a conductance readout: the column's nominal current with every row of
    // its group driven, from its counts of each digit (cell_bits <= 2).
    auto column_current = [&](int64_t i) {
        const int64_t n = p.tc_rows[size_t(i / p.ncols)], on = sw.st_on[size_t(i)];
        const int64_t n3 = p.cb == 2 ? sw.st_full[size_t(i)] : 0;
        const int64_t n2 = p.cb == 2 ? sw.st_sum[size_t(i)] - on - 2 * n3 : 0;
        const int64_t n1 = on - n3 - n2;
        return g_digit[0] * double(n - on) + g_digit[1] * double(n1) +
               (p.cb == 2 ? g_digit[2] * double(n2) + g_digit[3] * double(n3) : 0.0);
    };
    if (L.output && c.adc != AdcKind::Ideal &&
        (cols.per_column || p.RC != p.R || c.complement || L.digit_full_scale || cond_read)) {
        col_step.assign(size_t(p.T * p.ncols), 0.0);
        col_lmax.assign(size_t(p.T * p.ncols), 0.0);
        for (int64_t i = 0; i < p.T * p.ncols; ++i) {
            const int64_t Lc = cols.levels[size_t(i)];
            const double fs = L.digit_full_scale ? L.digit_full_scale[(i % p.ncols) % p.cpg]
                              : cols.per_column ? (cond_read ? column_current(i) : double(sw.st_sum[size_t(i)]))
                                                : double(fs_fixed);
            const double step = fs / double(Lc - 1) > 1.0 ? fs / double(Lc - 1) : 1.0;
            col_lmax[size_t(i)] = double(Lc - 1);
            const bool exact = !cond_read && step <= 1.0 && int64_t(sw.st_sum[size_t(i)]) <= Lc - 1;
            col_step[size_t(i)] = exact ? 0.0 : step;  // 0: exact
        }
    } else if (cond_read) {  // an ideal ADC: every reading exact (the kernel reads steps per column)
        col_step.assign(size_t(p.T * p.ncols), 0.0);
        col_lmax.assign(size_t(p.T * p.ncols), 0.0);
    }
    // The conductance readout multiplies by the steps' inverses (its steps are > 0 under any ADC but
    // the ideal one, whose readings are all exact: no inverses).
    std::vector<double> col_inv_step;
    if (cond_read && c.adc != AdcKind::Ideal)
        for (const double s : col_step) col_inv_step.push_back(1.0 / s);
    std::vector<double> plane_coef(size_t(p.P));
    for (int pl = 0; pl < p.P; ++pl) plane_coef[size_t(pl)] = std::ldexp(1.0, pl);
    if (L.a_signed) plane_coef[size_t(p.P - 1)] = -std::ldexp(1.0, p.P - 1);
    std::vector<int64_t> mult(size_t(p.G), 1);
    if (p.ref) mult[size_t(L.out)] = p.col_tiles;
    std::vector<double> y(L.output ? size_t(L.n * p.G) : 0, 0.0);
    KernelSums k;
    XbarPopcountArgs& a = cond.a;
    a.n_vectors = L.n;
    a.n_tiles = int(p.T);
    a.words_per_tile = int(p.WPT);
    a.a_planes = p.P;
    a.cell_bits = p.cb;
    a.planes_per_col = p.PC;
    a.n_groups = p.G;
    a.cols_per_group = int(p.cpg);
    a.x = in.xp.data();
    a.w = sw.wp.data();
    a.plane_coef = plane_coef.data();
    a.col_coef = p.col_coef.data();
    a.group_mult = mult.data();
    a.adc_level = adc_level.empty() || p.RC != p.R || cond_read ? nullptr : adc_level.data();
    a.s_stride = s_stride;
    a.col_step = col_step.empty() ? nullptr : col_step.data();
    a.col_lmax = col_lmax.empty() ? nullptr : col_lmax.data();
    a.col_inv_step = col_inv_step.empty() ? nullptr : col_inv_step.data();
    a.col_inverted = sw.inverted.empty() ? nullptr : sw.inverted.data();
    a.cell_max = int(p.dmask);
    if (cond_units) {  // the cells' model conductances are exact per digit for cell_bits <= 2
        const std::vector<double> g = digit_conductances(c);
        a.g_unit = (g.back() - g.front()) / double(p.dmask);
        a.digit_gain = L.digit_gain;
    }
    a.conv_weight = cond.conv_weight.empty() ? nullptr : cond.conv_weight.data();
    if (hist_mode) {  // bins up to the largest ADC input a conversion group can hold, then the last
        const double cell_max_v = cond_units ? *std::max_element(g_digit.begin(), g_digit.end()) : double(p.dmask);
        a.col_skip = cols.skip.data();
        a.hist_per_unit = L.histogram_bins_per_unit;
        a.hist_bins = int64_t(std::floor(double(p.RC) * cell_max_v * L.histogram_bins_per_unit)) + 2;
        r.hist_bins = a.hist_bins;
        r.hist.assign(size_t(p.cpg * a.hist_bins), 0);
        r.hist_vs.assign(size_t(p.cpg), 0.0);
        r.hist_ss.assign(size_t(p.cpg), 0.0);
        a.hist = r.hist.data();
        a.hist_vs = r.hist_vs.data();
        a.hist_ss = r.hist_ss.data();
    }
    a.power_law = cond.neurosim;
    a.energy = L.energy;
    a.scale = cond.scale;
    a.exponent = cond.sense.exponent;
    a.n_threads = p.n_threads;
    a.y = L.output ? y.data() : nullptr;
    a.g_sum = &k.g_sum;
    a.g_max = &k.g_max;
    a.f_sum = &k.f_sum;
    if (L.n > 0) active_kernels().xbar_popcount(a);

    // Output: shift-added readings, the reference subtracted (its readings, or digitally).
    if (L.output)
        visit_int(L.x_type, L.x, [&](auto* x) {
            for (int64_t n = 0; n < L.n; ++n) {
                double offset = 0.0;
                if (p.map == Mapping::Offset) {
                    if (p.ref) {
                        offset = y[size_t(n * p.G + L.out)];
                    } else {
                        double sx = 0.0;
                        for (int64_t row = 0; row < p.K; ++row) sx += double(x[n * p.K + row]);
                        offset = double(p.half) * sx;
                    }
                }
                for (int64_t o = 0; o < L.out; ++o) r.y[size_t(n * L.out + o)] = y[size_t(n * p.G + o)] - offset;
            }
            return 0;
        });
    return k;
}

}  // namespace hamq::xbar
