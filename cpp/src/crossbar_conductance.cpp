// Crossbar::simulate, stage 4: the cells' conductances. The kernel sums a model of them (every
// digit at the array's mean position); the deviation pass adds what each cell's own position and
// digit change, exactly per cell (crossbar_stages.hpp).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "crossbar_stages.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

namespace hamq {

namespace {

// The device's conductance at level v in [0, dmax] (digit units): linear between g_off and g_on. The
// one home of this rule: the model's cells, the drawn (stuck, drifted) cells and the functional path's.
inline double device_conductance(const CrossbarConfig& c, double v) {
    const double dmax = double((uint64_t(1) << c.cell_bits) - 1);
    return c.g_off + v / dmax * (c.g_on - c.g_off);
}

}  // namespace

std::vector<double> level_conductances(const CrossbarConfig& c, const std::vector<double>& levels) {
    const double r_mean = c.r_access + (c.cols + 1) / 2.0 * c.r_wire_row + (c.rows + 1) / 2.0 * c.r_wire_col;
    std::vector<double> g(levels.size());
    for (size_t i = 0; i < levels.size(); ++i) g[i] = 1.0 / (1.0 / device_conductance(c, levels[i]) + r_mean);
    return g;
}

std::vector<double> digit_conductances(const CrossbarConfig& c) {
    std::vector<double> digits(size_t(1) << c.cell_bits);
    for (size_t d = 0; d < digits.size(); ++d) digits[d] = double(d);
    return level_conductances(c, digits);
}

}  // namespace hamq

namespace hamq::xbar {

Conductance conductance_model(const Plan& p, const Columns& cols) {
    const CrossbarConfig& c = p.c;
    const int cb = p.cb;
    const uint64_t dmask = p.dmask;
    Conductance cond;
    // Digits at the array's mean position, exact in the digit value for cell_bits <= 2 (cell_bits 4:
    // exact at 0 and at single-bit digits); the rest is the deviation pass.
    cond.inv_g.resize(size_t(dmask + 1));
    cond.g_model.resize(size_t(dmask + 1));
    for (uint64_t d = 0; d <= dmask; ++d)
        cond.inv_g[size_t(d)] = 1.0 / device_conductance(c, double(d));
    const std::vector<double> g_at = digit_conductances(c);
    XbarPopcountArgs& a = cond.a;
    a.g_row = g_at[0];
    if (cb == 2) {
        a.g_plane[0] = g_at[1] - a.g_row;
        a.g_plane[1] = g_at[2] - a.g_row;
        a.g_plane[2] = g_at[3] - g_at[1] - g_at[2] + a.g_row;
    } else {
        for (int j = 0; j < cb; ++j) a.g_plane[j] = g_at[size_t(1) << j] - a.g_row;
    }
    for (uint64_t d = 0; d <= dmask; ++d) {
        double g = a.g_row;
        for (int j = 0; j < cb; ++j) g += ((d >> j) & 1) ? a.g_plane[j] : 0.0;
        if (cb == 2 && d == 3) g += a.g_plane[2];
        cond.g_model[size_t(d)] = g;
    }
    cond.neurosim = c.model == Model::NeuroSim13;
    cond.sense = cond.neurosim ? neurosim13::sense(c.roadmap, c.adc, c.v_read) : neurosim13::Sense{};
    cond.scale = 2.0 * c.v_read;  // NeuroSim scales R_col by 0.5 V / V_read
    // The weight of a column's (s G)^k terms: its conversion time (ns), 0 when skipped.
    const bool any_skip = std::any_of(cols.skip.begin(), cols.skip.end(), [](uint8_t v) { return v != 0; });
    if (any_skip || (cond.neurosim && c.adc == AdcKind::Sar)) {
        cond.conv_weight.resize(size_t(p.T * p.ncols));
        for (int64_t i = 0; i < p.T * p.ncols; ++i)
            cond.conv_weight[size_t(i)] = cols.skip[size_t(i)] ? 0.0f
                : float(cond.neurosim ? cond.sense.time(cols.levels[size_t(i)]) * 1e9 : 1.0);
    }
    return cond;
}

namespace {

// Per conversion group, its driven rows (rows no pulse drives add nothing): their offset in the
// group, the pulses driving them and their wire resistance to the sense amp along the column.
struct ActiveRows {
    std::vector<int64_t> start;   // [T + 1]
    std::vector<int32_t> row;
    std::vector<float> drive, r;
};

ActiveRows active_rows(const Plan& p, const Inputs& in) {
    const CrossbarLayer& L = p.L;
    const int64_t K = p.K, R = p.R;
    std::vector<int64_t> drives(size_t(K), 0);
    visit_int(L.x_type, L.x, [&](auto* x) {
        for (int64_t n = 0; n < L.n; ++n)
            for (int64_t row = 0; row < K; ++row)
                drives[size_t(row)] += popcount64(uint64_t(int64_t(x[n * K + row])) & in.amask);
        return 0;
    });
    ActiveRows act;
    act.start.assign(size_t(p.T + 1), 0);
    for (int64_t tc = 0; tc < p.T; ++tc) {
        const int64_t t = p.tc_tile[size_t(tc)], used_t = (t + 1) * R < K ? R : K - t * R;
        for (int64_t i = 0; i < p.tc_rows[size_t(tc)]; ++i) {
            const int64_t row = p.tc_row0[size_t(tc)] + i;
            if (drives[size_t(row)] == 0) continue;
            act.row.push_back(int32_t(i));
            act.drive.push_back(float(drives[size_t(row)]));
            act.r.push_back(float(double(used_t - (row - t * R)) * p.c.r_wire_col));
        }
        act.start[size_t(tc + 1)] = int64_t(act.row.size());
    }
    return act;
}

// The deviation of one column's driven cells in one conversion group from the model when the cells
// are drawn (CrossbarLayer::cell_factor / cell_state), in double precision: sum over its driven rows
// of drive (g_cell - g_model(d)), g_cell = f / (1 / G(v) + R), v = state_digits[state][d] (inv_state:
// 1 / G(v) per state and digit), R = r_col (access and row wire at the column's place) + the row's
// column wire. *model: sum of drive g_model(d).
double drawn_deviation(const Plan& p, const Conductance& cond, const std::vector<double>& inv_state, int64_t g,
                       int arr, int d, int64_t tc, double r_col, const uint8_t* digit, const ActiveRows& act,
                       int64_t a0, int64_t n, double* model) {
    const int64_t col = (int64_t(arr) * p.D + d) * p.G + g, row0 = p.tc_row0[size_t(tc)];
    const double* f = p.L.cell_factor + col * p.K;
    const uint8_t* state = p.L.cell_state + col * p.K;
    const size_t nd = size_t(p.dmask + 1);
    double dev = 0.0, mod = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        const int64_t row = row0 + act.row[size_t(a0 + j)];
        const uint8_t dj = digit[j];
        const double gm = cond.g_model[dj], drive = double(act.drive[size_t(a0 + j)]);
        const double r = r_col + double(act.r[size_t(a0 + j)]);
        const double cell = f[row] / (inv_state[size_t(state[row]) * nd + dj] + r);
        dev += drive * (cell - gm);
        mod += drive * gm;
    }
    *model = mod;
    return dev;
}

}  // namespace

// Sum over conversions of (G - G0), the correction of the sense amp's power law: each cell's
// deviation from the model (its position; with CrossbarLayer::cell_factor, its variation and state
// too) times the pulses driving its row (exact). The sense amp's (s G)^k is corrected per physical
// column: sum over its conversions of k s (s G0)^(k-1) (G - G0), with (s G0)^(k-1) at the column's
// mean model G0 (the tangent: the wires move G by a few %, where the secant differs by < 1e-8 of the
// energy) or, with drawn cells, the secant between G0 and the column's mean drawn G0 + deviation
// (exact when every conversion of the column deviates alike; a stuck ON cell can move one
// conversion's G by up to 150 times). What remains is the spread of G between conversions:
// (k - 1) = 1.7e-4 (LSTP) or 3.7e-3 (HP) times |ln(G / G0)|, a fraction of the deviation's term.
Deviation cell_deviation(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in,
                         const Conductance& cond) {
    const CrossbarConfig& c = p.c;
    const CrossbarLayer& L = p.L;
    Deviation out;
    const bool drawn = L.cell_factor != nullptr;
    const bool positional = c.r_wire_row != 0 || c.r_wire_col != 0 || p.cb == 4;
    if ((!positional && !drawn) || L.n == 0) return out;
    const ActiveRows act = active_rows(p, in);
    // the kernel's digit tables, padded to 16 entries (kernel_table.hpp xbar_deviation)
    std::vector<float> inv_gf(16, 0.0f), g_modelf(16, 0.0f), r_modelf(16, 0.0f);
    std::copy(cond.inv_g.begin(), cond.inv_g.end(), inv_gf.begin());
    std::copy(cond.g_model.begin(), cond.g_model.end(), g_modelf.begin());
    // 1 / G(v) of each drawn state's level v per stored digit (cond.inv_g's rule, so a state that
    // holds its digit as programmed gives the same bits)
    std::vector<double> inv_state;
    if (drawn)
        for (int64_t i = 0; i < int64_t(L.n_states) * int64_t(p.dmask + 1); ++i)
            inv_state.push_back(1.0 / device_conductance(c, L.state_digits[i]));
    // r_modelf: the series resistance the model's G implies
    for (size_t d = 0; d < cond.g_model.size(); ++d) r_modelf[d] = float(1.0 / cond.g_model[d] - cond.inv_g[d]);
    const double em1 = cond.neurosim ? cond.sense.exponent - 1.0 : 0.0;
    std::vector<double> dev(size_t(p.G), 0.0), dev_w(size_t(p.G), 0.0);
    const auto deviation = active_kernels().xbar_deviation;
    const int64_t D = p.D, P = p.P;
    const int64_t n_act = act.start[size_t(p.T)];
    visit_int(L.w_type, L.w, [&](auto* w) {
#pragma omp parallel num_threads(threads_for(L.out * p.K, p.n_threads))
        {
            std::vector<uint8_t> dga(drawn ? size_t(p.RC) : 0);
            std::vector<int32_t> wact(static_cast<size_t>(n_act));  // the group's weights on the driven rows, per conversion group
#pragma omp for schedule(static)
            for (int64_t g = 0; g < p.G; ++g) {
                const bool is_ref = g == L.out;
                if (is_ref || L.floor)  // the reference column stores weight 0 (floor: nothing, below)
                    std::fill(wact.begin(), wact.end(), 0);
                else
                    for (int64_t tc = 0; tc < p.T; ++tc)
                        for (int64_t j = act.start[size_t(tc)]; j < act.start[size_t(tc + 1)]; ++j)
                            wact[size_t(j)] = int32_t(w[g * p.K + p.tc_row0[size_t(tc)] + act.row[size_t(j)]]);
                for (int arr = 0; arr < p.A; ++arr)
                    for (int d = 0; d < D; ++d) {
                        const int64_t kc = g * p.cpg + arr * D + d;
                        int64_t ct, local;
                        p.place(kc, ct, local);
                        const double r_col = c.r_access + double(local + 1) * c.r_wire_row;
                        const float r_col_pos = float(r_col);
                        for (int64_t tc = 0; tc < p.T; ++tc) {
                            const size_t si = size_t(tc * p.ncols + kc);
                            const int64_t a0 = act.start[size_t(tc)], na = act.start[size_t(tc + 1)] - a0;
                            if (cols.skip[si] || na == 0) continue;
                            // floor: nothing stored, every cell holds digit 0; complemented: dmask - digit
                            const DigitRule rule = L.floor ? DigitRule{} : p.rules[size_t(arr * D + d)];
                            const uint32_t invert = !sw.inverted.empty() && sw.inverted[si] ? uint32_t(p.dmask) : 0u;
                            double acc_g = 0.0, acc_dev;
                            if (drawn) {
                                for (int64_t j = 0; j < na; ++j)
                                    dga[size_t(j)] = uint8_t(digit_of(wact[size_t(a0 + j)], rule) ^ invert);
                                acc_dev = drawn_deviation(p, cond, inv_state, g, arr, d, tc, r_col, dga.data(), act, a0, na, &acc_g);
                            } else {
                                acc_dev = deviation(wact.data() + a0, rule, invert, act.drive.data() + a0, act.r.data() + a0, na,
                                                    inv_gf.data(), g_modelf.data(), r_modelf.data(), r_col_pos, &acc_g);
                            }
                            const int64_t active = L.n * P - in.idle_tc[size_t(tc)];
                            double wt = 1.0;
                            if (em1 != 0.0 && active > 0 && acc_g > 0) {
                                wt = std::exp(em1 * std::log(cond.scale * acc_g / double(active)));
                                // drawn cells: the secant of (s G)^k between the column's mean model G0
                                // and its mean G0 + dev, over k s dev: the tangent times
                                // expm1(k log1p(r)) / (k r), r = dev / G0
                                const double k = em1 + 1.0, r = acc_dev / acc_g;
                                if (drawn && r != 0.0) wt *= std::expm1(k * std::log1p(r)) / (k * r);
                            }
                            if (!cond.conv_weight.empty()) wt *= double(cond.conv_weight[si]);
                            dev[size_t(g)] += acc_dev;
                            dev_w[size_t(g)] += wt * acc_dev;
                        }
                    }
                if (is_ref) {  // one copy per array column tile, all at the same local position
                    dev[size_t(g)] *= double(p.col_tiles);
                    dev_w[size_t(g)] *= double(p.col_tiles);
                }
            }
        }
        return 0;
    });
    for (int64_t g = 0; g < p.G; ++g) {
        out.g_dev += dev[size_t(g)];
        out.g_dev_w += dev_w[size_t(g)];
    }
    return out;
}

}  // namespace hamq::xbar
