#include "hamqcore/crossbar.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <string>

#include "crossbar_stages.hpp"
#include "neurosim13.hpp"
#include "neurosim14.hpp"

namespace hamq {

namespace {

std::string fmt(double v) {  // %g: 1e-7 reads as 1e-07, not 0.000000
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

const char* model_name(Model m) {
    switch (m) {
        case Model::NeuroSim13: return "neurosim-1.3";
        case Model::NeuroSim14: return "neurosim-1.4";
        case Model::Mnsim20: return "mnsim-2.0";
        case Model::Bitline: default: return "bitline";
    }
}

constexpr int kMaxRowsCols = 8192;  // a bound that keeps every table small

// A field a NeuroSim preset reproduces at its default value only.
struct Fixed {
    const char* name;
    double v, ref;
};

// The first of `fields` away from its default (relative 1e-12) as "name=value is not available in
// <model>: <why("name=default")>", or "" when every one is at its default.
template <class Why>
std::string first_changed(std::initializer_list<Fixed> fields, const std::string& model, Why why) {
    for (const Fixed& f : fields)
        if (std::fabs(f.v - f.ref) > 1e-12 * std::fabs(f.ref))
            return std::string(f.name) + "=" + fmt(f.v) + " is not available in " + model + ": " +
                   why(std::string(f.name) + "=" + fmt(f.ref));
    return "";
}

}  // namespace

const char* component_name(int c) {
    static const char* names[kNumComponents] = {"cell", "adc", "array", "encoder", "switch_matrix", "mux",
                                                "shift_add", "reference", "config", "mask", "subtract",
                                                "complement", "gain", "select"};
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
        case Model::NeuroSim14:
            // DNN+NeuroSim V1.4 Param.cpp defaults: SRAM cells (memcelltype 1, cellBit forced to 1),
            // 128 x 128 subarrays, readVoltage 0.55 V at 22 nm, LSTP, multilevel current-mode sense amp
            // with levelOutput 32 shared by numColMuxed 8 columns, the offset code. A cell storing 1
            // conducts through its access transistor and the column wire (ProcessingUnit.cpp
            // GetColumnResistance, SRAM: resCellAccess + wireResistanceCol), one storing 0 not at all;
            // its energy model charges every driven row alike (neurosim14.hpp), so the wires are in
            // g_on and no per-position resistance applies.
            c.rows = neurosim14::kRows;
            c.cols = neurosim14::kCols;
            c.cell_bits = 1;
            c.mapping = Mapping::Offset;
            c.g_on = 1.0 / neurosim14::kCellResistance;
            c.g_off = 0.0;
            c.v_read = neurosim14::kReadVoltage;
            c.t_read = 10e-9;  // readPulseWidth (not used by the conventionalParallel energy)
            c.r_access = c.r_wire_row = c.r_wire_col = 0.0;
            c.adc = AdcKind::Multilevel;
            c.adc_bits = 5;
            c.cols_per_adc = neurosim14::kColsPerAdc;
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
    if (c.gain_bits != 0 && (c.gain_bits < 2 || c.gain_bits > 16))
        return "gain_bits must be 0 (no gain) or in 2..16, got " + std::to_string(c.gain_bits);
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
        return "roadmap applies to model 'neurosim-1.3' only (" + model +
               (c.model == Model::NeuroSim14 ? " is reproduced at its default LSTP roadmap)" : " has no CMOS periphery roadmap)");
    switch (c.model) {
        case Model::NeuroSim13: {
            if (c.adc != AdcKind::Multilevel && c.adc != AdcKind::Sar)
                return model + " converts with NeuroSim's sense amps: adc must be 'multilevel' or 'sar'";
            // NeuroSim sizes its periphery (switch matrix, mux, decoder, encoder, shift-adders, the
            // wordline's access-transistor load) from these; hamqcore charges its energies as
            // computed for the defaults, so only the defaults are accepted.
            const CrossbarConfig d = preset_config(Model::NeuroSim13);
            const std::string changed = first_changed(
                {{"rows", double(c.rows), double(d.rows)}, {"cols", double(c.cols), double(d.cols)},
                 {"cols_per_adc", double(c.cols_per_adc), double(d.cols_per_adc)},
                 {"adc_bits", double(c.adc_bits), double(d.adc_bits)}, {"g_on", c.g_on, d.g_on},
                 {"g_off", c.g_off, d.g_off}, {"r_access", c.r_access, d.r_access}},
                model, [](const std::string& at) {
                    return "NeuroSim sizes its periphery for " + at + " and hamqcore charges those energies; use "
                           "model 'bitline' or 'mnsim-2.0' for other devices and geometries";
                });
            if (!changed.empty()) return changed;
            break;
        }
        case Model::NeuroSim14: {
            if (c.adc != AdcKind::Multilevel)
                return model + " converts with NeuroSim V1.4's default multilevel sense amp: adc must be 'multilevel'";
            // its periphery is sized from its defaults (as under NeuroSim13), and its energy is
            // reproduced for the SRAM cell, the offset code and full parallel reads only
            const CrossbarConfig d = preset_config(Model::NeuroSim14);
            const std::string changed = first_changed(
                {{"rows", double(c.rows), double(d.rows)}, {"cols", double(c.cols), double(d.cols)},
                 {"cols_per_adc", double(c.cols_per_adc), double(d.cols_per_adc)},
                 {"adc_bits", double(c.adc_bits), double(d.adc_bits)},
                 {"cell_bits", double(c.cell_bits), double(d.cell_bits)}, {"g_on", c.g_on, d.g_on},
                 {"g_off", c.g_off, d.g_off}, {"v_read", c.v_read, d.v_read}, {"r_access", c.r_access, d.r_access},
                 {"r_wire_row", c.r_wire_row, d.r_wire_row}, {"r_wire_col", c.r_wire_col, d.r_wire_col}},
                model, [](const std::string& at) {
                    return "NeuroSim V1.4's SRAM subarray is reproduced at its defaults (" + at + ")";
                });
            if (!changed.empty()) return changed;
            if (c.mapping != Mapping::Offset || c.reference_column)
                return model + " stores NeuroSim's offset code: mapping must be 'offset' without reference_column";
            const char* option = c.adc_resolution != AdcResolution::Fixed ? "adc_resolution='per_column'"
                                 : c.skip_empty                            ? "skip_empty"
                                 : c.complement                            ? "complement"
                                 : (c.rows_per_conversion != 0 && c.rows_per_conversion != c.rows)
                                     ? "rows_per_conversion"
                                     : nullptr;
            if (option)
                return std::string(option) + " is not available in " + model +
                       ": the HW-aware periphery is priced with NeuroSim V1.3's circuits (model 'neurosim-1.3')";
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
            break;
    }
    // every model's last check (each case returns its own first): e_adc is adc 'fixed''s energy
    if (c.model != Model::Mnsim20 && c.e_adc != 0)
        return "e_adc applies to adc='fixed' (model 'mnsim-2.0'), not to " + model;
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
        const double step = xbar::adc_step(fs, L);
        if (step > 1.0 || s_stride_ - 1 > L - 1) {  // lossy for some digit sum: tabulate the readings
            adc_level_.resize(size_t(s_stride_));
            for (int64_t s = 0; s < s_stride_; ++s) adc_level_[size_t(s)] = xbar::adc_reading(s, step, L);
        }
    }
}

CrossbarResult Crossbar::simulate(const CrossbarLayer& L, int n_threads) const {
    // The stages of crossbar_stages.hpp, each in its own file.
    using namespace xbar;
    CrossbarResult r;
    check_ranges(cfg_, L, n_threads, r);
    if (r.bad_w >= 0 || r.bad_x >= 0) return r;
    const Plan p = make_plan(cfg_, L, n_threads, r);
    if (L.output) r.y.assign(size_t(L.n * L.out), 0.0);
    if (r.arrays == 0) {  // nothing is stored: no arrays, no conversions
        r.columns = r.cells = 0;
        return r;
    }
    const StoredWeights sw = pack_weights(p, r);
    const Columns cols = plan_columns(p, sw);
    const Inputs in = pack_inputs(p);
    Conductance cond = conductance_model(p, cols);
    const Deviation dev = L.energy ? cell_deviation(p, sw, cols, in, cond) : Deviation{};
    const KernelSums k = run_kernel(p, sw, cols, in, cond, adc_level_, s_stride_, r);
    account(p, sw, cols, in, cond, k, dev, r);
    if (!L.energy) {  // the output alone: nothing energy-related was summed
        for (double& e : r.energy) e = std::nan("");
        r.sum_current = r.max_current = std::nan("");
    }
    return r;
}

}  // namespace hamq
