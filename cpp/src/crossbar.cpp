#include "hamqcore/crossbar.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "kernel_table.hpp"
#include "neurosim13.hpp"
#include "threading.hpp"

namespace hamq {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string fmt(double v) {  // %g: 1e-7 reads as 1e-07, not 0.000000
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

const char* model_name(Model m) {
    switch (m) {
        case Model::NeuroSim13: return "neurosim-1.3";
        case Model::Mnsim20: return "mnsim-2.0";
        case Model::Bitline: default: return "bitline";
    }
}

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

// MNSIM-2.0 Crossbar.py calculate_xbar_read_latency: the wire latency of a rows x cols crossbar (s).
double mnsim_wire_latency(int rows, int cols) {
    const double size = double(rows) * cols / 1024 / 8;  // KB
    return 0.001 * (0.0002 * size * size + 5e-6 * size + 4e-14) * 1e-9;
}

constexpr int kMaxRowsCols = 8192;  // a bound that keeps every table small

// The ADC: L levels over [0, full_scale] digit units, in steps of at least one digit (digit sums are
// integers); readings saturate at the top level.
double adc_step(int64_t full_scale, int64_t levels) {
    const double step = double(full_scale) / double(levels - 1);
    return step > 1.0 ? step : 1.0;
}
double adc_reading(int64_t s, double step, int64_t levels) {
    double level = std::nearbyint(double(s) / step);
    level = level > double(levels - 1) ? double(levels - 1) : level;
    return step * level;
}

// Digit d (0 = least significant) of array type `arr` of n consecutive weights (range-checked, so
// |q| < 2^16 fits the 32-bit arithmetic); the mapping's cases sit outside the loops.
template <class T, class O>
void extract_digits(const T* w, int64_t n, Mapping map, int arr, int d, int D, int cb, int b, O* out) {
    const int32_t half = int32_t(1) << (b - 1);
    const uint32_t dmask = (1u << cb) - 1;
    const int shift = d * cb;
    switch (map) {
        case Mapping::Offset:
            for (int64_t i = 0; i < n; ++i) out[i] = O((uint32_t(int32_t(w[i]) + half) >> shift) & dmask);
            break;
        case Mapping::Differential:
            if (arr == 0)
                for (int64_t i = 0; i < n; ++i) out[i] = O((uint32_t(int32_t(w[i]) > 0 ? int32_t(w[i]) : 0) >> shift) & dmask);
            else
                for (int64_t i = 0; i < n; ++i) out[i] = O((uint32_t(int32_t(w[i]) < 0 ? -int32_t(w[i]) : 0) >> shift) & dmask);
            break;
        case Mapping::TwosComplement:
            if (d == D - 1)  // the sign column: bit b-1 of q mod 2^b
                for (int64_t i = 0; i < n; ++i) out[i] = O((uint32_t(int32_t(w[i])) >> (b - 1)) & 1u);
            else
                for (int64_t i = 0; i < n; ++i) out[i] = O(((uint32_t(int32_t(w[i])) & uint32_t(half - 1)) >> shift) & dmask);
            break;
    }
}

}  // namespace

const char* component_name(int c) {
    static const char* names[kNumComponents] = {"cell", "adc", "array", "encoder", "switch_matrix", "mux",
                                                "shift_add"};
    return names[c];
}

CrossbarConfig preset_config(Model m) {
    CrossbarConfig c;
    c.model = m;
    switch (m) {
        case Model::NeuroSim13:
            // DNN+NeuroSim V1.3 Param.cpp defaults: 128 x 128 subarrays, cellBit 2, 6 kOhm / 900 kOhm
            // (resistanceOn, resistanceOff = 150 R_on), readVoltage 0.5 V, resistanceAccess = R_on *
            // IR_DROP_TOLERANCE (0.25), wire resistance per cell at 22 nm, LSTP roadmap
            // (deviceroadmap 2), multilevel current-mode sense amp with levelOutput 32 shared by
            // numColMuxed 8 columns; the signed weight as one offset code (Chip.cpp LoadInWeightData).
            c.rows = neurosim13::kRows;
            c.cols = neurosim13::kCols;
            c.cell_bits = 2;
            c.mapping = Mapping::Offset;
            c.g_on = 1.0 / neurosim13::kResistanceOn;
            c.g_off = 1.0 / neurosim13::kResistanceOff;
            c.v_read = neurosim13::kReadVoltage;
            c.t_read = 10e-9;  // readPulseWidth (not used by the conventionalParallel energy)
            c.r_access = neurosim13::kAccessFraction * neurosim13::kResistanceOn;
            c.r_wire_row = neurosim13::kWireRow;
            c.r_wire_col = neurosim13::kWireCol;
            c.adc = AdcKind::Multilevel;
            c.adc_bits = 5;
            c.cols_per_adc = neurosim13::kColsPerAdc;
            break;
        case Model::Mnsim20:
            // MNSIM-2.0 SimConfig.ini (commit ca39ccb): Xbar_Size 256,256; Device_Level 2 (1 bit per
            // cell); Device_Resistance 1e6, 1e4; Read_Voltage 0, 0.15; Read_Latency 3.16 ns;
            // Xbar_Polarity 2 (a positive and a negative crossbar); ADC_Choice 6 (ADC.py: 6 bits,
            // 1.26 mW, 1 GS/s, latency (6 + 2) / 1 ns, so 10.08 pJ per conversion); ADC_Num 128
            // ADCs per 256 columns. Its crossbar energy has no series resistance.
            c.rows = 256;
            c.cols = 256;
            c.cell_bits = 1;
            c.mapping = Mapping::Differential;
            c.g_on = 1.0 / 1e4;
            c.g_off = 1.0 / 1e6;
            c.v_read = 0.15;
            c.t_read = 3.16e-9;
            c.r_access = 0.0;
            c.adc = AdcKind::Fixed;
            c.adc_bits = 6;
            c.cols_per_adc = 2;
            c.e_adc = 1.26e-3 * (6 + 2) * 1e-9;
            break;
        case Model::Bitline: default:
            // The driven cells of NeuroSim's default device and geometry (above), no periphery; the
            // cell energy over the read pulse, readPulseWidth 10 ns.
            c = preset_config(Model::NeuroSim13);
            c.model = Model::Bitline;
            c.adc = AdcKind::Ideal;
            break;
    }
    return c;
}

int mapping_arrays(Mapping m) { return m == Mapping::Differential ? 2 : 1; }

int mapping_digits(Mapping m, int w_bits, int cell_bits) {
    switch (m) {
        case Mapping::Offset: return (w_bits + cell_bits - 1) / cell_bits;
        case Mapping::Differential: return (w_bits - 1 + cell_bits - 1) / cell_bits;
        case Mapping::TwosComplement: default: return (w_bits - 1 + cell_bits - 1) / cell_bits + 1;
    }
}

int64_t mapping_level_max(Mapping, int w_bits) { return (int64_t(1) << (w_bits - 1)) - 1; }
int64_t mapping_level_min(Mapping m, int w_bits) {
    return m == Mapping::Differential ? -mapping_level_max(m, w_bits) : -(int64_t(1) << (w_bits - 1));
}

std::string validate(const CrossbarConfig& c) {
    if (c.rows < 1 || c.rows > kMaxRowsCols)
        return "rows must be in 1.." + std::to_string(kMaxRowsCols) + ", got " + std::to_string(c.rows);
    if (c.cols < 1 || c.cols > kMaxRowsCols)
        return "cols must be in 1.." + std::to_string(kMaxRowsCols) + ", got " + std::to_string(c.cols);
    if (c.cell_bits != 1 && c.cell_bits != 2 && c.cell_bits != 4)
        return "cell_bits must be one of 1, 2, 4, got " + std::to_string(c.cell_bits);
    if (!(c.g_off >= 0) || !std::isfinite(c.g_off))
        return "g_off must be a finite conductance >= 0, got " + fmt(c.g_off);
    if (!(c.g_on > c.g_off) || !std::isfinite(c.g_on))
        return "g_on must be finite and greater than g_off (" + fmt(c.g_off) + "), got " + fmt(c.g_on);
    if (!(c.v_read > 0) || !std::isfinite(c.v_read)) return "v_read must be > 0, got " + fmt(c.v_read);
    if (!(c.t_read > 0) || !std::isfinite(c.t_read)) return "t_read must be > 0, got " + fmt(c.t_read);
    const struct { const char* name; double v; } res[] = {
        {"r_access", c.r_access}, {"r_wire_row", c.r_wire_row}, {"r_wire_col", c.r_wire_col}};
    for (const auto& r : res)
        if (!(r.v >= 0) || !std::isfinite(r.v))
            return std::string(r.name) + " must be a finite resistance >= 0, got " + fmt(r.v);
    if (c.adc_bits < 1 || c.adc_bits > 16) return "adc_bits must be in 1..16, got " + std::to_string(c.adc_bits);
    if (c.cols_per_adc < 1 || c.cols_per_adc > kMaxRowsCols)
        return "cols_per_adc must be in 1.." + std::to_string(kMaxRowsCols) + ", got " + std::to_string(c.cols_per_adc);
    if (c.adc_full_scale < 0)
        return "adc_full_scale must be >= 0 (0 = rows * (2^cell_bits - 1)), got " + std::to_string(c.adc_full_scale);
    if (!(c.e_adc >= 0) || !std::isfinite(c.e_adc)) return "e_adc must be >= 0, got " + fmt(c.e_adc);
    if (c.reference_column && c.mapping != Mapping::Offset)
        return "reference_column applies to mapping 'offset' only";
    if (c.rows_per_conversion < 0 || c.rows_per_conversion > c.rows)
        return "rows_per_conversion must be in 0..rows (" + std::to_string(c.rows) + "; 0 = rows), got " +
               std::to_string(c.rows_per_conversion);
    if (c.complement && c.mapping == Mapping::Differential)
        return "complement applies to mappings 'offset' and 'twos_complement' (the differential arrays store "
               "magnitudes, mostly 0 bits)";
    if (c.adc == AdcKind::Ideal && (c.skip_empty || c.adc_resolution != AdcResolution::Fixed))
        return std::string(c.skip_empty ? "skip_empty" : "adc_resolution='per_column'") +
               " needs an ADC: adc is 'ideal' (model '" + model_name(c.model) + "' converts nothing)";
    if (c.adc == AdcKind::Fixed && c.adc_resolution != AdcResolution::Fixed)
        return "adc_resolution='per_column' needs an ADC energy that depends on its levels (model 'neurosim-1.3'); "
               "adc 'fixed' charges e_adc per conversion";
    const std::string model = std::string("model '") + model_name(c.model) + "'";
    if (c.model != Model::NeuroSim13 && c.roadmap != Roadmap::LP)
        return "roadmap applies to model 'neurosim-1.3' only (" + model + " has no CMOS periphery roadmap)";
    switch (c.model) {
        case Model::NeuroSim13: {
            if (c.adc != AdcKind::Multilevel && c.adc != AdcKind::Sar)
                return model + " converts with NeuroSim's sense amps: adc must be 'multilevel' or 'sar'";
            // NeuroSim sizes its periphery (switch matrix, mux, decoder, encoder, shift-adders, the
            // wordline's access-transistor load) from these; hamqcore charges its energies as
            // computed for the defaults, so only the defaults are accepted.
            const CrossbarConfig d = preset_config(Model::NeuroSim13);
            const struct { const char* name; double v, ref; } fixed[] = {
                {"rows", double(c.rows), double(d.rows)}, {"cols", double(c.cols), double(d.cols)},
                {"cols_per_adc", double(c.cols_per_adc), double(d.cols_per_adc)},
                {"adc_bits", double(c.adc_bits), double(d.adc_bits)}, {"g_on", c.g_on, d.g_on},
                {"g_off", c.g_off, d.g_off}, {"r_access", c.r_access, d.r_access}};
            for (const auto& f : fixed)
                if (std::fabs(f.v - f.ref) > 1e-12 * std::fabs(f.ref))
                    return std::string(f.name) + "=" + fmt(f.v) + " is not available in " + model +
                           ": NeuroSim sizes its periphery for " + f.name + "=" + fmt(f.ref) +
                           " and hamqcore charges those energies; use model 'bitline' or 'mnsim-2.0' for other "
                           "devices and geometries";
            if (c.e_adc != 0) return "e_adc applies to adc='fixed' (model 'mnsim-2.0'), not to " + model;
            break;
        }
        case Model::Mnsim20:
            if (c.adc != AdcKind::Fixed)
                return model + " charges a fixed energy per conversion: adc must be 'fixed'";
            if (c.r_access != 0 || c.r_wire_row != 0 || c.r_wire_col != 0)
                return model + " has no series resistance in its crossbar energy: r_access, r_wire_row and "
                       "r_wire_col must be 0";
            break;
        case Model::Bitline:
            if (c.adc != AdcKind::Ideal) return model + " charges no conversion: adc must be 'ideal'";
            if (c.e_adc != 0) return "e_adc applies to adc='fixed' (model 'mnsim-2.0'), not to " + model;
            break;
    }
    return "";
}

std::string validate_layer(const CrossbarConfig& c, int w_bits, int a_bits) {
    if (w_bits < kMinBits || w_bits > kMaxBits)
        return "w_bits must be an integer in 2..16, got " + std::to_string(w_bits);
    if (a_bits < 1 || a_bits > 16) return "a_bits must be an integer in 1..16, got " + std::to_string(a_bits);
    const int D = mapping_digits(c.mapping, w_bits, c.cell_bits);
    if (c.reference_column && c.cols <= D)
        return "cols=" + std::to_string(c.cols) + " leaves no column for weights beside the " + std::to_string(D) +
               " reference columns of a " + std::to_string(w_bits) + "-bit weight";
    return "";
}

Crossbar::Crossbar(const CrossbarConfig& config) : cfg_(config) {
    const int64_t dmax = (int64_t(1) << cfg_.cell_bits) - 1;
    s_stride_ = int64_t(cfg_.rows) * dmax + 1;
    if (cfg_.adc != AdcKind::Ideal) {
        const int64_t L = int64_t(1) << cfg_.adc_bits;
        const int64_t fs = cfg_.adc_full_scale > 0 ? cfg_.adc_full_scale : s_stride_ - 1;
        const double step = adc_step(fs, L);
        if (step > 1.0 || s_stride_ - 1 > L - 1) {  // lossy for some digit sum: tabulate the readings
            adc_level_.resize(size_t(s_stride_));
            for (int64_t s = 0; s < s_stride_; ++s) adc_level_[size_t(s)] = adc_reading(s, step, L);
        }
    }
}

CrossbarResult Crossbar::simulate(const CrossbarLayer& L, int n_threads) const {
    const CrossbarConfig& c = cfg_;
    CrossbarResult r;
    const int64_t w_lo = mapping_level_min(c.mapping, L.w_bits), w_hi = mapping_level_max(c.mapping, L.w_bits);
    r.bad_w = visit_int(L.w_type, L.w, [&](auto* w) -> int64_t {
        for (int64_t i = 0; i < L.out * L.k; ++i)
            if (int64_t(w[i]) < w_lo || int64_t(w[i]) > w_hi) return i;
        return -1;
    });
    const int64_t x_lo = L.a_signed ? -(int64_t(1) << (L.a_bits - 1)) : 0;
    const int64_t x_hi = L.a_signed ? (int64_t(1) << (L.a_bits - 1)) - 1 : (int64_t(1) << L.a_bits) - 1;
    r.bad_x = visit_int(L.x_type, L.x, [&](auto* x) -> int64_t {
        for (int64_t i = 0; i < L.n * L.k; ++i)
            if (int64_t(x[i]) < x_lo || int64_t(x[i]) > x_hi) return i;
        return -1;
    });
    if (r.bad_w >= 0 || r.bad_x >= 0) return r;

    // ---- Geometry --------------------------------------------------------------------------------
    const Mapping map = c.mapping;
    const int A = mapping_arrays(map), D = mapping_digits(map, L.w_bits, c.cell_bits);
    const int cb = c.cell_bits, P = L.a_bits, PC = cb == 2 ? 3 : cb, b = L.w_bits;
    const bool ref = c.reference_column;
    const int64_t R = c.rows, K = L.k, TA = ceil_div(K, R);   // array row tiles
    const int64_t cols_eff = c.cols - (ref ? D : 0);
    const int64_t wcols = L.out * D;  // weight columns per array type
    const int64_t col_tiles = wcols > 0 ? ceil_div(wcols, cols_eff) : 0;
    r.pulses = P;
    r.row_tiles = TA;
    r.col_tiles = col_tiles;
    r.arrays = TA * col_tiles * A;
    r.columns = A * wcols + (ref ? D * col_tiles : 0);
    r.cells = r.columns * K;
    if (L.output) r.y.assign(size_t(L.n * L.out), 0.0);
    if (r.arrays == 0) {  // nothing is stored: no arrays, no conversions
        r.columns = r.cells = 0;
        return r;
    }
    // Conversion groups ("tiles" of the kernel): rows_per_conversion rows of one array row tile.
    const int64_t RC = c.rows_per_conversion > 0 && c.rows_per_conversion < R ? c.rows_per_conversion : R;
    std::vector<int64_t> tc_row0, tc_rows, tc_tile;
    for (int64_t t = 0; t < TA; ++t)
        for (int64_t r0 = t * R; r0 < (t + 1) * R && r0 < K; r0 += RC) {
            tc_row0.push_back(r0);
            tc_rows.push_back(std::min({RC, (t + 1) * R - r0, K - r0}));
            tc_tile.push_back(t);
        }
    const int64_t T = int64_t(tc_row0.size()), WPT = ceil_div(RC, 64);

    const int64_t cpg = int64_t(A) * D;        // kernel columns per output group
    const int64_t G = L.out + (ref ? 1 : 0);    // + the reference group
    const int64_t ncols = G * cpg;              // kernel columns
    const int64_t ld = ncols * cb;              // weight planes per row word: [cb][ncols]
    const uint64_t dmask = (uint64_t(1) << cb) - 1;
    const int64_t half = int64_t(1) << (b - 1);
    const auto transpose = active_kernels().transpose_bits;
    // Physical place of kernel column kc = g * cpg + arr * D + d (the reference group: one copy per
    // array column tile, in its last D columns).
    auto place = [&](int64_t kc, int64_t& col_tile, int64_t& local) {
        const int64_t g = kc / cpg, d = (kc % cpg) % D;
        if (g == L.out) {
            col_tile = -1;
            local = cols_eff + (D - 1 - d);
            return;
        }
        const int64_t pos = c.column_order == ColumnOrder::Digit ? (D - 1 - d) * L.out + g : g * D + (D - 1 - d);
        col_tile = pos / cols_eff;
        local = pos % cols_eff;
    };

    // Row blocks of up to 64 rows that never cross a conversion group: (group, word, first row, end).
    struct Block { int64_t tc, word, r0, r1; };
    std::vector<Block> blocks;
    for (int64_t tc = 0; tc < T; ++tc)
        for (int64_t r0 = tc_row0[size_t(tc)]; r0 < tc_row0[size_t(tc)] + tc_rows[size_t(tc)]; r0 += 64)
            blocks.push_back({tc, (r0 - tc_row0[size_t(tc)]) / 64, r0,
                              std::min(r0 + 64, tc_row0[size_t(tc)] + tc_rows[size_t(tc)])});

    // The shift-add weight of every column of a group.
    std::vector<double> col_coef(static_cast<size_t>(cpg));
    for (int arr = 0; arr < A; ++arr)
        for (int d = 0; d < D; ++d) {
            double coef = std::ldexp(1.0, d * cb);
            if (map == Mapping::Differential && arr == 1) coef = -coef;
            if (map == Mapping::TwosComplement && d == D - 1) coef = -std::ldexp(1.0, b - 1);
            col_coef[size_t(arr * D + d)] = coef;
        }

    // ---- Weights into bit-planes [T][WPT][cb][ncols], with per (group, column) statistics ------------
    // Column kc holds its digit's cb bit-planes. ON cells = nonzero digits.
    std::vector<uint64_t> wp(static_cast<size_t>(T * WPT * ld), 0);
    std::vector<int32_t> st_on(static_cast<size_t>(T * ncols), 0), st_sum(static_cast<size_t>(T * ncols), 0),
        st_full(static_cast<size_t>(T * ncols), 0);  // nonzero digits, digit sum, digits == dmax
    const std::vector<int16_t> zeros(static_cast<size_t>(R > 64 ? R : 64), 0);  // the reference weight, q = 0
    auto pack_group = [&](int64_t g, const Block& bl, const auto* wblock) {
        uint64_t* dst = wp.data() + (bl.tc * WPT + bl.word) * ld + g * cpg;
        uint16_t digits[64];
        uint64_t planes[4];
        for (int arr = 0; arr < A; ++arr)
            for (int d = 0; d < D; ++d) {
                for (int i = 0; i < 64; ++i) digits[i] = 0;
                extract_digits(wblock, bl.r1 - bl.r0, map, arr, d, D, cb, b, digits);
                transpose(digits, cb, planes);
                uint64_t* col = dst + (arr * D + d);
                uint64_t any = 0, all = ~uint64_t(0);
                int32_t sum = 0;
                for (int j = 0; j < cb; ++j) {
                    col[j * ncols] = planes[j];
                    any |= planes[j];
                    all &= planes[j];
                    sum += __builtin_popcountll(planes[j]) << j;
                }
                const size_t si = size_t(bl.tc * ncols + g * cpg + arr * D + d);
                st_on[si] += __builtin_popcountll(any);
                st_sum[si] += sum;
                st_full[si] += __builtin_popcountll(all);
            }
    };
    if (!L.floor) {
        visit_int(L.w_type, L.w, [&](auto* w) {
#pragma omp parallel for num_threads(threads_for(L.out * K, n_threads)) schedule(static)
            for (int64_t o = 0; o < L.out; ++o)
                for (const Block& bl : blocks) pack_group(o, bl, w + o * K + bl.r0);
            return 0;
        });
        if (ref)
            for (const Block& bl : blocks) pack_group(L.out, bl, zeros.data());
    }

    // Complement: per physical column (array row tile, kernel column), stored inverted when that
    // leaves fewer ON cells; its planes are flipped on the used rows.
    std::vector<uint8_t> inverted;
    if (c.complement) {
        inverted.assign(static_cast<size_t>(T * ncols), 0);
        for (int64_t t = 0; t < TA; ++t)
            for (int64_t kc = 0; kc < ncols; ++kc) {
                int64_t on = 0, on_inv = 0;
                for (int64_t tc = 0; tc < T; ++tc)
                    if (tc_tile[size_t(tc)] == t) {
                        const size_t si = size_t(tc * ncols + kc);
                        on += st_on[si];
                        on_inv += tc_rows[size_t(tc)] - st_full[si];
                    }
                if (on_inv >= on) continue;
                r.inverted_columns += kc / cpg == L.out ? col_tiles : 1;
                for (int64_t tc = 0; tc < T; ++tc) {
                    if (tc_tile[size_t(tc)] != t) continue;
                    const size_t si = size_t(tc * ncols + kc);
                    const int32_t n = int32_t(tc_rows[size_t(tc)]);
                    inverted[si] = 1;
                    st_on[si] = n - st_full[si];
                    st_sum[si] = n * int32_t(dmask) - st_sum[si];
                    for (int64_t wd = 0; wd < WPT; ++wd) {
                        const int64_t rows_here = std::min<int64_t>(64, n - wd * 64);
                        if (rows_here <= 0) break;
                        const uint64_t rowmask = rows_here == 64 ? ~uint64_t(0) : (uint64_t(1) << rows_here) - 1;
                        uint64_t* col = wp.data() + (tc * WPT + wd) * ld + kc;
                        for (int j = 0; j < cb; ++j) col[j * ncols] ^= rowmask;
                    }
                }
            }
    }
    // ON cells (physical: the reference group once per array column tile).
    int64_t on_cells = 0;
    for (int64_t tc = 0; tc < T; ++tc)
        for (int64_t kc = 0; kc < ncols; ++kc)
            on_cells += int64_t(st_on[size_t(tc * ncols + kc)]) * (kc / cpg == L.out ? col_tiles : 1);
    r.on_cells = on_cells;

    // Per (group, column): skipped (empty), levels of its conversions and their time (s).
    const bool per_column = c.adc_resolution == AdcResolution::PerColumn;
    const int levels_fixed = 1 << c.adc_bits;
    std::vector<uint8_t> skip(static_cast<size_t>(T * ncols), 0);
    std::vector<int32_t> levels(static_cast<size_t>(T * ncols), levels_fixed);
    for (int64_t i = 0; i < T * ncols; ++i) {
        if (c.skip_empty && st_on[size_t(i)] == 0) {
            skip[size_t(i)] = 1;
            continue;
        }
        if (per_column) {
            int bits = 1;
            while (bits < c.adc_bits && (int64_t(1) << bits) - 1 < int64_t(st_sum[size_t(i)])) ++bits;
            levels[size_t(i)] = 1 << bits;
        }
    }
    // Mux cycles of every array read (conversion group tc, column tile, array type): the sense amp of
    // m = cols_per_adc adjacent columns reads them in turn, local column c in cycle c % m. With
    // skip_empty only the cycles holding a converted column run, and a read with none is not done.
    const int64_t m = std::min<int64_t>(c.cols_per_adc, c.cols);
    const int64_t narr = col_tiles * A;
    std::vector<uint8_t> cycle_on(static_cast<size_t>(T * narr * m), c.skip_empty ? 0 : 1);
    if (c.skip_empty)
        for (int64_t tc = 0; tc < T; ++tc)
            for (int64_t kc = 0; kc < ncols; ++kc) {
                if (skip[size_t(tc * ncols + kc)]) continue;
                int64_t ct, local;
                place(kc, ct, local);
                const int arr = int((kc % cpg) / D);
                for (int64_t k2 = ct < 0 ? 0 : ct; k2 < (ct < 0 ? col_tiles : ct + 1); ++k2)
                    cycle_on[size_t(((tc * col_tiles + k2) * A + arr) * m + local % m)] = 1;
            }
    std::vector<int64_t> cycles_tc(static_cast<size_t>(T * narr), 0);  // cycles run per read
    for (int64_t i = 0; i < T * narr; ++i)
        for (int64_t j = 0; j < m; ++j) cycles_tc[size_t(i)] += cycle_on[size_t(i * m + j)];

    // ---- Inputs into bit-planes [N][T][P][WPT]; driven rows per (vector, group, pulse) --------------
    std::vector<uint64_t> xp(static_cast<size_t>(L.n * T * P * WPT), 0);
    const uint64_t amask = (uint64_t(1) << P) - 1;
    visit_int(L.x_type, L.x, [&](auto* x) {
#pragma omp parallel for num_threads(threads_for(L.n * K, n_threads)) schedule(static)
        for (int64_t n = 0; n < L.n; ++n) {
            uint16_t codes[64];
            uint64_t planes[16];
            for (const Block& bl : blocks) {
                for (int i = 0; i < 64; ++i) codes[i] = 0;
                for (int64_t row = bl.r0; row < bl.r1; ++row)
                    codes[row - bl.r0] = uint16_t(uint64_t(int64_t(x[n * K + row])) & amask);
                transpose(codes, P, planes);
                for (int p = 0; p < P; ++p) xp[size_t(((n * T + bl.tc) * P + p) * WPT + bl.word)] = planes[p];
            }
        }
        return 0;
    });
    std::vector<int64_t> driven_tc(static_cast<size_t>(T), 0), idle_tc(static_cast<size_t>(T), 0);
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t tc = 0; tc < T; ++tc)
            for (int p = 0; p < P; ++p) {
                int nd = 0;
                for (int64_t wd = 0; wd < WPT; ++wd) nd += popcount64(xp[size_t(((n * T + tc) * P + p) * WPT + wd)]);
                driven_tc[size_t(tc)] += nd;
                idle_tc[size_t(tc)] += nd == 0;
            }

    // ---- The kernel's conductance model ----------------------------------------------------------
    // Digits at the array's mean position, exact in the digit value for cell_bits <= 2 (cell_bits 4:
    // exact at 0 and at single-bit digits); the rest is the deviation pass below.
    const double r_mean = c.r_access + (c.cols + 1) / 2.0 * c.r_wire_row + (R + 1) / 2.0 * c.r_wire_col;
    std::vector<double> inv_g(static_cast<size_t>(dmask + 1)), g_model(static_cast<size_t>(dmask + 1));
    for (uint64_t d = 0; d <= dmask; ++d) inv_g[size_t(d)] = 1.0 / (c.g_off + double(d) / double(dmask) * (c.g_on - c.g_off));
    auto g_at = [&](uint64_t d, double r_series) { return 1.0 / (inv_g[size_t(d)] + r_series); };
    XbarPopcountArgs a;
    a.g_row = g_at(0, r_mean);
    if (cb == 2) {
        a.g_plane[0] = g_at(1, r_mean) - a.g_row;
        a.g_plane[1] = g_at(2, r_mean) - a.g_row;
        a.g_plane[2] = g_at(3, r_mean) - g_at(1, r_mean) - g_at(2, r_mean) + a.g_row;
    } else {
        for (int j = 0; j < cb; ++j) a.g_plane[j] = g_at(uint64_t(1) << j, r_mean) - a.g_row;
    }
    for (uint64_t d = 0; d <= dmask; ++d) {
        double g = a.g_row;
        for (int j = 0; j < cb; ++j) g += ((d >> j) & 1) ? a.g_plane[j] : 0.0;
        if (cb == 2 && d == 3) g += a.g_plane[2];
        g_model[size_t(d)] = g;
    }
    const bool neurosim = c.model == Model::NeuroSim13;
    const neurosim13::Sense sense = neurosim ? neurosim13::sense(c.roadmap, c.adc) : neurosim13::Sense{};
    const double scale = 2.0 * c.v_read;  // NeuroSim scales R_col by 0.5 V / V_read
    // The weight of a column's (s G)^k terms: its conversion time (ns), 0 when skipped.
    std::vector<float> conv_weight;
    const bool any_skip = std::any_of(skip.begin(), skip.end(), [](uint8_t v) { return v != 0; });
    if (any_skip || (neurosim && c.adc == AdcKind::Sar)) {
        conv_weight.resize(static_cast<size_t>(T * ncols));
        for (int64_t i = 0; i < T * ncols; ++i)
            conv_weight[size_t(i)] = skip[size_t(i)] ? 0.0f : float(neurosim ? sense.time(levels[size_t(i)]) * 1e9 : 1.0);
    }

    // ---- Sum over conversions of (G - G0), first-order correction of the sense amp's power law ------
    // Each cell's deviation from the model times the pulses driving its row (exact). The sense amp's
    // (s G)^k is corrected to first order per physical column: sum over its conversions of
    // k s (s G0)^(k-1) (G - G0), with (s G0)^(k-1) at the column's mean G0 (it varies by < 0.4 %
    // between its conversions, and (G - G0) is a few % of G).
    double g_dev = 0.0, g_dev_w = 0.0;
    const bool positional = c.r_wire_row != 0 || c.r_wire_col != 0 || cb == 4;
    if (positional && L.n > 0) {
        // per driven row (rows no pulse drives add nothing), per conversion group: the pulses driving
        // it and its wire resistance to the sense amp along the column
        std::vector<int64_t> drives(static_cast<size_t>(K), 0);
        visit_int(L.x_type, L.x, [&](auto* x) {
            for (int64_t n = 0; n < L.n; ++n)
                for (int64_t row = 0; row < K; ++row)
                    drives[size_t(row)] += popcount64(uint64_t(int64_t(x[n * K + row])) & amask);
            return 0;
        });
        std::vector<int64_t> act_start(static_cast<size_t>(T + 1), 0);
        std::vector<int32_t> act_row;    // offset of each driven row in its group
        std::vector<float> act_drive, act_r;
        for (int64_t tc = 0; tc < T; ++tc) {
            const int64_t t = tc_tile[size_t(tc)], used_t = (t + 1) * R < K ? R : K - t * R;
            for (int64_t i = 0; i < tc_rows[size_t(tc)]; ++i) {
                const int64_t row = tc_row0[size_t(tc)] + i;
                if (drives[size_t(row)] == 0) continue;
                act_row.push_back(int32_t(i));
                act_drive.push_back(float(drives[size_t(row)]));
                act_r.push_back(float(double(used_t - (row - t * R)) * c.r_wire_col));
            }
            act_start[size_t(tc + 1)] = int64_t(act_row.size());
        }
        std::vector<float> inv_gf(inv_g.begin(), inv_g.end()), g_modelf(g_model.begin(), g_model.end());
        std::vector<float> r_modelf(g_model.size());  // the series resistance the model's G implies
        for (size_t d = 0; d < g_model.size(); ++d) r_modelf[d] = float(1.0 / g_model[d] - inv_g[d]);
        const double em1 = neurosim ? sense.exponent - 1.0 : 0.0;
        std::vector<double> dev(static_cast<size_t>(G), 0.0), dev_w(static_cast<size_t>(G), 0.0);
        const auto deviation = active_kernels().xbar_deviation;
        visit_int(L.w_type, L.w, [&](auto* w) {
#pragma omp parallel num_threads(threads_for(L.out * K, n_threads))
            {
                std::vector<uint8_t> dg(static_cast<size_t>(RC)), dga(static_cast<size_t>(RC));
#pragma omp for schedule(static)
                for (int64_t g = 0; g < G; ++g) {
                    const bool is_ref = g == L.out;
                    for (int arr = 0; arr < A; ++arr)
                        for (int d = 0; d < D; ++d) {
                            const int64_t kc = g * cpg + arr * D + d;
                            int64_t ct, local;
                            place(kc, ct, local);
                            const float r_col_pos = float(c.r_access + double(local + 1) * c.r_wire_row);
                            for (int64_t tc = 0; tc < T; ++tc) {
                                const size_t si = size_t(tc * ncols + kc);
                                const int64_t a0 = act_start[size_t(tc)], na = act_start[size_t(tc + 1)] - a0;
                                if (skip[si] || na == 0) continue;
                                const int64_t r0 = tc_row0[size_t(tc)], used = tc_rows[size_t(tc)];
                                if (L.floor)
                                    std::fill(dg.begin(), dg.end(), uint8_t(0));
                                else if (is_ref)
                                    extract_digits(zeros.data(), used, map, arr, d, D, cb, b, dg.data());
                                else
                                    extract_digits(w + g * K + r0, used, map, arr, d, D, cb, b, dg.data());
                                const bool inv = !inverted.empty() && inverted[si];
                                for (int64_t j = 0; j < na; ++j) {
                                    const uint8_t v = dg[size_t(act_row[size_t(a0 + j)])];
                                    dga[size_t(j)] = inv ? uint8_t(dmask - v) : v;
                                }
                                double acc_g = 0.0;
                                const double acc_dev = deviation(dga.data(), act_drive.data() + a0, act_r.data() + a0, na,
                                                                 inv_gf.data(), g_modelf.data(), r_modelf.data(), r_col_pos, &acc_g);
                                const int64_t active = L.n * P - idle_tc[size_t(tc)];
                                double wt = 1.0;
                                if (em1 != 0.0 && active > 0 && acc_g > 0)
                                    wt = std::exp(em1 * std::log(scale * acc_g / double(active)));
                                if (!conv_weight.empty()) wt *= double(conv_weight[si]);
                                dev[size_t(g)] += acc_dev;
                                dev_w[size_t(g)] += wt * acc_dev;
                            }
                        }
                    if (is_ref) {  // one copy per array column tile, all at the same local position
                        dev[size_t(g)] *= double(col_tiles);
                        dev_w[size_t(g)] *= double(col_tiles);
                    }
                }
            }
            return 0;
        });
        for (int64_t g = 0; g < G; ++g) {
            g_dev += dev[size_t(g)];
            g_dev_w += dev_w[size_t(g)];
        }
    }

    // ---- The functional readings -----------------------------------------------------------------
    // Per (group, column): its levels over its full scale (per-column resolution: its largest digit
    // sum), exact when a unit step covers every sum the column can read.
    std::vector<double> col_step, col_lmax;
    const int64_t fs_fixed = c.adc_full_scale > 0 ? c.adc_full_scale : RC * int64_t(dmask);
    if (L.output && c.adc != AdcKind::Ideal && (per_column || RC != R || c.complement)) {
        col_step.assign(static_cast<size_t>(T * ncols), 0.0);
        col_lmax.assign(static_cast<size_t>(T * ncols), 0.0);
        for (int64_t i = 0; i < T * ncols; ++i) {
            const int64_t Lc = levels[size_t(i)], fs = per_column ? int64_t(st_sum[size_t(i)]) : fs_fixed;
            const double step = adc_step(fs, Lc);
            col_lmax[size_t(i)] = double(Lc - 1);
            col_step[size_t(i)] = step > 1.0 || int64_t(st_sum[size_t(i)]) > Lc - 1 ? step : 0.0;  // 0: exact
        }
    }

    // ---- The kernel ------------------------------------------------------------------------------
    std::vector<double> plane_coef(static_cast<size_t>(P));
    for (int p = 0; p < P; ++p) plane_coef[size_t(p)] = std::ldexp(1.0, p);
    if (L.a_signed) plane_coef[size_t(P - 1)] = -std::ldexp(1.0, P - 1);
    std::vector<int64_t> mult(static_cast<size_t>(G), 1);
    if (ref) mult[size_t(L.out)] = col_tiles;
    std::vector<double> y(L.output ? static_cast<size_t>(L.n * G) : 0, 0.0);
    double g_sum = 0.0, g_max = 0.0, f_sum = 0.0;
    a.n_vectors = L.n;
    a.n_tiles = int(T);
    a.words_per_tile = int(WPT);
    a.a_planes = P;
    a.cell_bits = cb;
    a.planes_per_col = PC;
    a.n_groups = G;
    a.cols_per_group = int(cpg);
    a.x = xp.data();
    a.w = wp.data();
    a.plane_coef = plane_coef.data();
    a.col_coef = col_coef.data();
    a.group_mult = mult.data();
    a.adc_level = adc_level_.empty() || RC != R ? nullptr : adc_level_.data();
    a.s_stride = s_stride_;
    a.col_step = col_step.empty() ? nullptr : col_step.data();
    a.col_lmax = col_lmax.empty() ? nullptr : col_lmax.data();
    a.col_inverted = inverted.empty() ? nullptr : inverted.data();
    a.cell_max = int(dmask);
    a.conv_weight = conv_weight.empty() ? nullptr : conv_weight.data();
    a.power_law = neurosim;
    a.scale = scale;
    a.exponent = sense.exponent;
    a.n_threads = n_threads;
    a.y = L.output ? y.data() : nullptr;
    a.g_sum = &g_sum;
    a.g_max = &g_max;
    a.f_sum = &f_sum;
    if (L.n > 0) active_kernels().xbar_popcount(a);

    // Output: shift-added readings, the reference subtracted (its readings, or digitally).
    if (L.output)
        visit_int(L.x_type, L.x, [&](auto* x) {
            for (int64_t n = 0; n < L.n; ++n) {
                double offset = 0.0;
                if (map == Mapping::Offset) {
                    if (ref) {
                        offset = y[size_t(n * G + L.out)];
                    } else {
                        double sx = 0.0;
                        for (int64_t row = 0; row < K; ++row) sx += double(x[n * K + row]);
                        offset = double(half) * sx;
                    }
                }
                for (int64_t o = 0; o < L.out; ++o) r.y[size_t(n * L.out + o)] = y[size_t(n * G + o)] - offset;
            }
            return 0;
        });

    // ---- Accounting ------------------------------------------------------------------------------
    // Conversions: every column of every group converts once per vector and pulse, unless skipped
    // (the kernel's G sums leave the skipped columns out).
    double g_total = g_sum + g_dev, idle_sa = 0.0, static_sa = 0.0;
    int64_t conv = 0, conv_idle = 0, conv_skipped = 0;
    for (int64_t tc = 0; tc < T; ++tc) {
        const int64_t reads = L.n * P, idle = idle_tc[size_t(tc)];
        for (int64_t kc = 0; kc < ncols; ++kc) {
            const size_t si = size_t(tc * ncols + kc);
            const int64_t m = kc / cpg == L.out ? col_tiles : 1;
            if (skip[si]) {
                conv_skipped += m * reads;
                r.resolution_columns[0] += m;
                continue;
            }
            conv += m * reads;
            conv_idle += m * idle;
            int bits = 0;
            while ((1 << bits) < levels[si]) ++bits;
            r.resolution_columns[bits] += m;
            if (neurosim) {
                const double t_conv = sense.time(levels[si]);
                static_sa += double(m) * double(reads - idle) * sense.static_power(levels[si]) * t_conv;
                idle_sa += double(m) * double(idle) * sense.idle_power * t_conv;
            }
        }
    }
    r.conversions = conv;
    r.idle_conversions = conv_idle;
    r.skipped_conversions = conv_skipped;
    // Array reads: every array once per vector, pulse and conversion group, unless skip_empty finds
    // nothing to convert in it; a read runs its mux cycles (all m, or those holding a converted column).
    int64_t reads = 0, reads_skipped = 0, cycles = 0, cycles_skipped = 0;
    double rows_driven = 0.0;  // driven rows summed over array reads, weighted by the cycles run / m
    for (int64_t tc = 0; tc < T; ++tc)
        for (int64_t a = 0; a < narr; ++a) {
            const int64_t cyc = cycles_tc[size_t(tc * narr + a)];
            if (cyc == 0) {
                reads_skipped += L.n * P;
                continue;
            }
            reads += L.n * P;
            cycles += cyc * L.n * P;
            cycles_skipped += (m - cyc) * L.n * P;
            rows_driven += double(cyc) / double(m) * double(driven_tc[size_t(tc)]);
        }
    r.subarray_reads = reads;
    r.skipped_reads = reads_skipped;
    r.read_cycles = cycles;
    r.skipped_cycles = cycles_skipped;
    int64_t driven = 0;
    for (int64_t tc = 0; tc < T; ++tc) driven += driven_tc[size_t(tc)];
    r.driven_rows = driven;
    r.sum_current = c.v_read * g_total;
    r.max_current = c.v_read * g_max;
    switch (c.model) {
        case Model::NeuroSim13: {
            // the dynamic terms: sense.dynamic (W) (s G)^k over the conversion time; f_sum is weighted
            // by the time in ns when conv_weight is set, else every conversion takes 1 ns
            const double dyn = (f_sum + sense.exponent * scale * g_dev_w) * (conv_weight.empty() ? sense.time(levels_fixed) : 1e-9);
            r.energy[kAdc] = idle_sa + static_sa + sense.dynamic * dyn;
            // every per-read term of NeuroSim's is proportional to numColMuxed (the cycles of a read):
            // a read that runs cyc of its m cycles costs cyc / m of it (skip_empty; else cyc = m)
            const neurosim13::Periphery p = neurosim13::periphery(c.roadmap, c.adc, D, P, c.v_read);
            const double full_reads = double(cycles) / double(m);
            r.energy[kArray] = full_reads * p.array_fixed + rows_driven * p.array_per_row;
            r.energy[kSwitchMatrix] = full_reads * p.switch_fixed + rows_driven * p.switch_per_row;
            r.energy[kMux] = full_reads * p.mux;
            r.energy[kEncoder] = full_reads * p.encoder;
            r.energy[kShiftAdd] = full_reads * p.shift_add;
            r.latency = double(L.n) * P * double(T / std::max<int64_t>(1, TA)) * std::min(c.cols_per_adc, c.cols) *
                        sense.time(levels_fixed);
            break;
        }
        case Model::Mnsim20: {
            const double t_xbar = c.t_read + mnsim_wire_latency(c.rows, c.cols);
            r.energy[kCell] = c.v_read * c.v_read * t_xbar * g_total;
            r.energy[kAdc] = c.e_adc * double(r.conversions);
            r.latency = double(L.n) * P * (t_xbar + std::min(c.cols_per_adc, c.cols) * (c.adc_bits + 2) * 1e-9);
            break;
        }
        case Model::Bitline:
            r.energy[kCell] = c.v_read * c.v_read * c.t_read * g_total;
            r.latency = double(L.n) * P * c.t_read;
            break;
    }
    return r;
}

}  // namespace hamq
