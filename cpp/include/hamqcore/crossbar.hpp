// Data-dependent crossbar simulator: bitline currents, energy and functional output of one layer.
//
// Model (every quantity below is what simulate() computes; README "Crossbar model" repeats it):
//  * A layer's integer weights W (out x K) are tiled onto arrays of `rows` wordlines x `cols`
//    bitlines. Row tile t holds inputs [t*rows, (t+1)*rows).
//  * Each stored magnitude is split into D = ceil(m / cell_bits) digits (m = w_bits - 1 for the
//    differential mapping, w_bits for offset), one column per digit. A cell holding digit d has
//    conductance G(d) = g_off + d / (2^cell_bits - 1) * (g_on - g_off).
//  * mapping Differential: a positive array stores max(q,0), a negative array max(-q,0), each
//    floor(cols / D) outputs wide. mapping Offset: one array stores q + 2^(w_bits-1), floor(cols/D) - 1
//    outputs wide, plus D reference columns per array storing the code of q = 0 (2^(w_bits-1)),
//    whose reading is subtracted digitally.
//  * Inputs are a_bits integers applied bit-serially: pulse p drives the rows whose input bit p is
//    1. Unsigned inputs weigh 2^p; signed inputs are two's complement, the MSB pulse weighing
//    -2^(a_bits-1). Row tiles, pulses and digits are shift-added digitally.
//  * For every vector, pulse, row tile and used column: with nd driven rows and digit sum
//    S = sum of the driven cells' digits, G_col = nd g_off + S (g_on - g_off) / (2^cell_bits - 1),
//    I_col = V_read G_col, and
//      E_cell  = V_read I_col t_read
//      E_adc   = P(G_col) t_read  (multilevel sense amp, NeuroSim):
//                P = 1.8939e-6 (L-1) + 0.073 exp(-2.311 log10(0.5 / (G_col V_read))), L = 2^adc_bits
//              = P(G_col) (log2 L + 1) 1 ns  (SAR):
//                P = (0.7213 log2 L + 3.3041) 1e-6 + 0.084273 exp(-2.311 log10(0.5 / (G_col V_read)))
//              = 0 for the ideal ADC; the current-dependent term is 0 when G_col = 0.
//      E_shift_add = e_shift_add per conversion;
//    and per pulse, row tile and array: E_wordline = e_wordline per driven row.
//    Columns sharing an ADC (cols_per_adc) are converted one after another: latency grows, the
//    energy per conversion does not.
//  * ADC reading: the digit sum is quantised with L levels over [0, full_scale] (full_scale =
//    adc_full_scale, or rows (2^cell_bits - 1) when 0): step = full_scale / (L-1), reading =
//    step * min(L-1, round(S / step)); exact when full_scale <= L-1 or the ADC is ideal.
//    Output y[n,o] = sum over pulses, tiles and digits of the weighted readings (minus the reference
//    readings for offset); with an exact ADC it equals the integer product x W^T.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "hamqcore/encoding.hpp"

namespace hamq {

enum class Mapping : int { Differential = 0, Offset = 1 };
enum class AdcKind : int { Ideal = 0, Multilevel = 1, Sar = 2 };

struct CrossbarConfig {
    int rows = 128;
    int cols = 128;
    int cell_bits = 1;
    Mapping mapping = Mapping::Differential;
    double g_on = 1.0 / 6e3;    // S
    double g_off = 1.0 / 900e3; // S
    double v_read = 0.5;        // V
    double t_read = 10e-9;      // s
    AdcKind adc = AdcKind::Multilevel;
    int adc_bits = 5;
    int cols_per_adc = 8;
    int64_t adc_full_scale = 0;  // digit-sum full scale of the ADC; 0 = rows * (2^cell_bits - 1)
    double e_wordline = 0.0;     // J per driven row per pulse per array
    double e_shift_add = 0.0;    // J per conversion
};

// Each returns an empty string when valid, else a message naming the bad field and value.
std::string validate(const CrossbarConfig& c);
std::string validate_layer(const CrossbarConfig& c, int w_bits, int a_bits);

struct CrossbarLayer {
    IntType w_type = IntType::I8;
    const void* w = nullptr;  // out x K, C-contiguous
    int64_t out = 0, k = 0;
    int w_bits = 8;
    IntType x_type = IntType::I8;
    const void* x = nullptr;  // N x K, C-contiguous
    int64_t n = 0;
    int a_bits = 8;
    bool a_signed = false;
};

struct CrossbarResult {
    std::vector<double> y;  // N x out
    double e_cell = 0, e_adc = 0, e_wordline = 0, e_shift_add = 0;  // J, whole batch
    double sum_current = 0;   // A, summed over conversions
    double max_current = 0;   // A
    int64_t conversions = 0;
    int64_t pulses = 0;        // read pulses per vector: a_bits
    int64_t row_tiles = 0, col_tiles = 0, arrays = 0;
    int64_t columns = 0;       // used physical columns (including reference columns)
    int64_t on_cells = 0, cells = 0;  // programmed cells with a nonzero digit / all used cells
    double latency = 0;        // s, whole batch, arrays in parallel
    // Index of the first bad element (-1 if none): w outside the w_bits range, x outside the
    // a_bits range (for its signedness).
    int64_t bad_w = -1, bad_x = -1;
};

// Simulator bound to one configuration; the ADC energy table is built once and reused.
class Crossbar {
   public:
    explicit Crossbar(const CrossbarConfig& config);  // config must be valid
    const CrossbarConfig& config() const { return cfg_; }
    CrossbarResult simulate(const CrossbarLayer& layer, int n_threads) const;

   private:
    CrossbarConfig cfg_;
    int64_t s_stride_;
    std::vector<double> adc_energy_;  // [(rows+1) * s_stride]: energy per conversion
    std::vector<double> adc_level_;   // [s_stride]: ADC reading; empty when exact
};

}  // namespace hamq
