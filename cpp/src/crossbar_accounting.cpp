// Crossbar::simulate, stage 6: what the layer's reads cost, under the configuration's accounting
// model; every constant's source is cited in neurosim13.cpp and crossbar.cpp (crossbar_stages.hpp).
#include <algorithm>

#include "crossbar_stages.hpp"
#include "neurosim14.hpp"

namespace hamq::xbar {

namespace {

// MNSIM-2.0 Crossbar.py calculate_xbar_read_latency: the wire latency of a rows x cols crossbar (s).
double mnsim_wire_latency(int rows, int cols) {
    const double size = double(rows) * cols / 1024 / 8;  // KB
    return 0.001 * (0.0002 * size * size + 5e-6 * size + 4e-14) * 1e-9;
}

// Conversions: every column of every group converts once per vector and pulse, unless skipped (the
// kernel's G sums leave the skipped columns out). NeuroSim's sense amp: its static and idle terms.
void count_conversions(const Plan& p, const Columns& cols, const Inputs& in, const Conductance& cond,
                       CrossbarResult& r, double& static_sa, double& idle_sa) {
    for (int64_t tc = 0; tc < p.T; ++tc) {
        const int64_t reads = p.L.n * p.P, idle = in.idle_tc[size_t(tc)];
        for (int64_t kc = 0; kc < p.ncols; ++kc) {
            const size_t si = size_t(tc * p.ncols + kc);
            const int64_t copies = p.copies(kc);
            if (cols.skip[si]) {
                r.skipped_conversions += copies * reads;
                r.resolution_columns[0] += copies;
                continue;
            }
            r.conversions += copies * reads;
            r.idle_conversions += copies * idle;
            int bits = 0;
            while ((1 << bits) < cols.levels[si]) ++bits;
            r.resolution_columns[bits] += copies;
            if (cond.neurosim) {
                const double t_conv = cond.sense.time(cols.levels[si]);
                static_sa += double(copies) * double(reads - idle) * cond.sense.static_power(cols.levels[si]) * t_conv;
                idle_sa += double(copies) * double(idle) * cond.sense.idle_power * t_conv;
            }
        }
    }
}

// Array reads: every array once per vector, pulse and conversion group, unless skip_empty finds
// nothing to convert in it; a read runs its mux cycles (all m, or those holding a converted column).
// Returns the driven rows summed over array reads, weighted by the cycles run / m.
double count_reads(const Plan& p, const Columns& cols, const Inputs& in, CrossbarResult& r) {
    const int64_t per_group = p.L.n * p.P;
    double rows_driven = 0.0;
    for (int64_t tc = 0; tc < p.T; ++tc)
        for (int64_t a = 0; a < p.narr; ++a) {
            const int64_t cyc = cols.cycles[size_t(tc * p.narr + a)];
            if (cyc == 0) {
                r.skipped_reads += per_group;
                continue;
            }
            r.subarray_reads += per_group;
            r.read_cycles += cyc * per_group;
            r.skipped_cycles += (p.m - cyc) * per_group;
            rows_driven += double(cyc) / double(p.m) * double(in.driven_tc[size_t(tc)]);
        }
    for (int64_t tc = 0; tc < p.T; ++tc) r.driven_rows += in.driven_tc[size_t(tc)];
    return rows_driven;
}

// NeuroSim V1.4 (SRAM): a conversion's sense-amp energy depends on the driven rows n of its read alone
// (neurosim14.hpp): per conversion group, every converted column once per (vector, pulse) at its n.
double neurosim14_conversions(const Plan& p, const Columns& cols, const Inputs& in) {
    const int64_t H = p.RC + 1;
    double e = 0.0;
    for (int64_t tc = 0; tc < p.T; ++tc) {
        int64_t converted = 0;
        for (int64_t kc = 0; kc < p.ncols; ++kc)
            if (!cols.skip[size_t(tc * p.ncols + kc)]) converted += p.copies(kc);
        double reads = 0.0;
        for (int64_t nd = 0; nd < H; ++nd)
            if (const int64_t k = in.driven_hist[size_t(tc * H + nd)]) reads += double(k) * neurosim14::conversion_energy(nd);
        e += reads * double(converted);
    }
    return e;
}

int ceil_log2(int64_t n) {
    int b = 0;
    while ((int64_t(1) << b) < n) ++b;
    return b;
}

// Reference-ladder switches of one read of every array (summed over conversion groups): per sense amp,
// the converted columns it reads in cycle order (local column u m + k in cycle k), each with its
// ladder (digit references: its digit position; per-column: the column's own ladder when its digit
// sum exceeds the shared unit ladder, else that shared ladder), counted where a column's ladder
// differs from the previous converted column's, cyclically (reads repeat).
int64_t select_switches(const Plan& p, const StoredWeights& sw, const Columns& cols, int64_t shared_top) {
    const int64_t width = p.c.cols, m = p.m, units = ceil_div(width, m), arrays = p.narr;
    constexpr int64_t kNone = -2, kShared = -1;
    std::vector<int64_t> ladder(size_t(arrays * width));
    std::vector<int64_t> seq;
    int64_t switches = 0;
    for (int64_t tc = 0; tc < p.T; ++tc) {
        std::fill(ladder.begin(), ladder.end(), kNone);
        for (int64_t kc = 0; kc < p.ncols; ++kc) {
            const size_t si = size_t(tc * p.ncols + kc);
            if (cols.skip[si]) continue;
            const int64_t d = (kc % p.cpg) % p.D;
            const int64_t id = cols.per_column ? (sw.st_sum[si] > shared_top ? kc : kShared) : d;
            p.for_copies(kc, [&](int64_t a, int64_t local) { ladder[size_t(a * width + local)] = id; });
        }
        for (int64_t a = 0; a < arrays; ++a)
            for (int64_t u = 0; u < units; ++u) {
                seq.clear();
                for (int64_t k = 0; k < m && u * m + k < width; ++k) {
                    const int64_t id = ladder[size_t(a * width + u * m + k)];
                    if (id != kNone) seq.push_back(id);
                }
                for (size_t i = 0; seq.size() > 1 && i < seq.size(); ++i)
                    switches += seq[i] != seq[(i + seq.size() - 1) % seq.size()];
            }
    }
    return switches;
}

// The circuits the HW-aware periphery options and the differential mapping add (crossbar.hpp,
// Component: each formula with its source), under NeuroSim13's 22 nm gates.
void charge_options(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in,
                    const Conductance& cond, CrossbarResult& r) {
    const CrossbarConfig& c = p.c;
    const int64_t N = p.L.n, units = ceil_div(c.cols, p.m);
    if (cols.per_column) {  // a column's own reference ladder, when the shared unit ladder is too short
        const std::vector<double> g = digit_conductances(c);
        const double u = (g.back() - g.front()) / double(p.dmask);
        const int64_t shared_top = (int64_t(1) << c.adc_bits) - 1;
        double e = 0.0;
        for (int64_t tc = 0; tc < p.T; ++tc) {
            const int64_t active = N * p.P - in.idle_tc[size_t(tc)];
            const double n = double(p.tc_rows[size_t(tc)]);
            for (int64_t kc = 0; kc < p.ncols; ++kc) {
                const size_t si = size_t(tc * p.ncols + kc);
                if (cols.skip[si] || sw.st_sum[si] <= shared_top) continue;
                const int64_t lc = cols.levels[si];
                const double step = double(sw.st_sum[si]) / double(lc - 1);
                double power = 0.0;
                for (int64_t j = 0; j + 1 < lc; ++j)
                    power += cond.sense.dynamic_power(n * g.front() + (double(j) + 0.5) * step * u);
                e += power * cond.sense.time(int(lc)) * double(active) * double(p.copies(kc));
            }
        }
        r.energy[kReference] = e;
    }
    const int bits = (cols.per_column ? ceil_log2(c.adc_bits) : 0) + (c.skip_empty ? 1 : 0) + (c.complement ? 1 : 0);
    if (bits > 0) r.energy[kConfig] = neurosim13::dff_energy(c.roadmap, double(r.read_cycles), double(bits * units));
    if (c.skip_empty)
        r.energy[kMask] = neurosim13::dff_energy(c.roadmap, double(r.subarray_reads), double(p.m)) +
                          neurosim13::dff_energy(c.roadmap, double(r.subarray_reads + r.skipped_reads), 1.0);
    if (p.map == Mapping::Differential)
        r.energy[kSubtract] =
            neurosim13::adder_energy(c.roadmap, c.adc_bits + p.D + p.P, 1.0, double(N * p.T * p.L.out));
    if (c.complement) {
        double e = 0.0;
        for (int64_t tc = 0; tc < p.T; ++tc) {
            int64_t inverted = 0;
            for (int64_t kc = 0; kc < p.ncols; ++kc)
                if (sw.inverted[size_t(tc * p.ncols + kc)]) inverted += p.copies(kc);
            if (inverted == 0) continue;
            const int64_t n = p.tc_rows[size_t(tc)];
            e += neurosim13::adder_energy(c.roadmap, p.L.a_bits + ceil_log2(n) + p.cb,
                                          double(n - 1 + (p.cb > 1 ? 1 : 0)), double(N));
            e += neurosim13::adder_energy(c.roadmap, c.adc_bits + p.P + p.cb, double(inverted), double(N));
        }
        r.energy[kComplement] = e;
    }
    if (c.gain_bits > 0)  // (NeuroSim V1.4's Adder.cpp and its 22 nm LSTP NAND2 are V1.3's: one formula for both)
        r.energy[kGain] = neurosim13::adder_energy(c.roadmap, c.adc_bits + c.gain_bits, double(c.gain_bits - 1),
                                                   double(r.conversions));
    if ((c.digit_references || cols.per_column) && c.adc != AdcKind::Ideal && c.adc != AdcKind::Fixed) {
        const int64_t lines = c.adc == AdcKind::Sar ? 1 : (int64_t(1) << c.adc_bits) - 1;
        const int64_t shared_top = (int64_t(1) << c.adc_bits) - 1;
        r.energy[kSelect] = double(select_switches(p, sw, cols, shared_top)) * double(N * p.P) * double(lines) *
                            (c.model == Model::NeuroSim14 ? neurosim14::mux_gate_energy()
                                                          : neurosim13::mux_gate_energy(c.roadmap, c.v_read));
    }
}

}  // namespace

void account(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in, const Conductance& cond,
             const KernelSums& k, const Deviation& dev, CrossbarResult& r) {
    const CrossbarConfig& c = p.c;
    const CrossbarLayer& L = p.L;
    double static_sa = 0.0, idle_sa = 0.0;
    count_conversions(p, cols, in, cond, r, static_sa, idle_sa);
    const double rows_driven = count_reads(p, cols, in, r);
    const double g_total = k.g_sum + dev.g_dev;
    r.sum_current = c.v_read * g_total;
    r.max_current = c.v_read * k.g_max;
    switch (c.model) {
        case Model::NeuroSim13: {
            const neurosim13::Sense& sense = cond.sense;
            // the dynamic terms: sense.dynamic (W) (s G)^k over the conversion time; f_sum is weighted
            // by the time in ns when conv_weight is set, else every conversion takes 1 ns
            const double dyn = (k.f_sum + sense.exponent * cond.scale * dev.g_dev_w) *
                               (cond.conv_weight.empty() ? sense.time(cols.levels_fixed) : 1e-9);
            r.energy[kAdc] = idle_sa + static_sa + sense.dynamic * dyn;
            // every per-read term of NeuroSim's is proportional to numColMuxed (the cycles of a read):
            // a read that runs cyc of its m cycles costs cyc / m of it (skip_empty; else cyc = m)
            const neurosim13::Periphery per = neurosim13::periphery(c.roadmap, c.adc, p.D, p.P, c.v_read);
            const double full_reads = double(r.read_cycles) / double(p.m);
            r.energy[kArray] = full_reads * per.array_fixed + rows_driven * per.array_per_row;
            r.energy[kSwitchMatrix] = full_reads * per.switch_fixed + rows_driven * per.switch_per_row;
            r.energy[kMux] = full_reads * per.mux;
            r.energy[kEncoder] = full_reads * per.encoder;
            r.energy[kShiftAdd] = full_reads * per.shift_add;
            r.latency = double(L.n) * p.P * double(p.T / std::max<int64_t>(1, p.TA)) *
                        std::min(c.cols_per_adc, c.cols) * sense.time(cols.levels_fixed);
            charge_options(p, sw, cols, in, cond, r);
            break;
        }
        case Model::NeuroSim14: {
            // SubArray::CalculatePower (SRAM, conventionalParallel): the sense amps per conversion,
            // the rest per array read (fixed + per driven row); none of it sees the stored bits
            r.energy[kAdc] = neurosim14_conversions(p, cols, in);
            const neurosim14::Periphery per = neurosim14::periphery(p.D, p.P);
            const double reads = double(r.subarray_reads);
            r.energy[kArray] = rows_driven * per.array_per_row;
            r.energy[kSwitchMatrix] = reads * per.switch_fixed + rows_driven * per.switch_per_row;
            r.energy[kMux] = reads * per.mux;
            r.energy[kShiftAdd] = reads * per.shift_add;
            r.latency = double(L.n) * p.P * double(p.T / std::max<int64_t>(1, p.TA)) *
                        std::min(c.cols_per_adc, c.cols) * neurosim14::column_latency();
            charge_options(p, sw, cols, in, cond, r);  // the functional options' gain and select
            break;
        }
        case Model::Mnsim20: {
            const double t_xbar = c.t_read + mnsim_wire_latency(c.rows, c.cols);
            r.energy[kCell] = c.v_read * c.v_read * t_xbar * g_total;
            r.energy[kAdc] = c.e_adc * double(r.conversions);
            r.latency = double(L.n) * p.P * (t_xbar + std::min(c.cols_per_adc, c.cols) * (c.adc_bits + 2) * 1e-9);
            break;
        }
        case Model::Bitline:
            r.energy[kCell] = c.v_read * c.v_read * c.t_read * g_total;
            r.latency = double(L.n) * p.P * c.t_read;
            break;
    }
}

}  // namespace hamq::xbar
