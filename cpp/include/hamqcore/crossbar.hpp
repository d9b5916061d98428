// Data-dependent crossbar simulator: column currents, read energy and functional output of one
// layer, under a named accounting model. README "Crossbar model" has the same content with sources.
//
// Layout (every model). A layer's integer weights W (out x K) are stored as cells of cell_bits bits.
//  * mapping Offset (NeuroSim's): one array type holds the code q + 2^(b-1), q in [-2^(b-1),
//    2^(b-1)-1], as D = ceil(b / cell_bits) digits; no reference column is charged unless
//    reference_column is set (then every array keeps D columns holding the code of q = 0, and its
//    readings are subtracted; else the periphery subtracts 2^(b-1) sum(x) digitally).
//  * mapping Differential: a positive and a negative array type hold max(q,0) and max(-q,0),
//    q in [-(2^(b-1)-1), 2^(b-1)-1], as D = ceil((b-1) / cell_bits) digits each.
//  * mapping TwosComplement: q mod 2^b, q in [-2^(b-1), 2^(b-1)-1]: the low b-1 bits as
//    ceil((b-1) / cell_bits) digits plus one sign column (digit 0 or 1) read with weight -2^(b-1).
//  Per array type the cells form a K x (out * D) matrix, weight-major, most significant digit first
//  (NeuroSim's Chip.cpp LoadInWeightData), cut into rows x cols arrays; a weight's digits may span
//  two arrays, as in NeuroSim. Row tile t holds inputs [t*rows, (t+1)*rows).
//  A cell holding digit d in row i of a tile with n used rows and in local column c conducts
//      g = 1 / (1 / G(d) + r_access + (c + 1) r_wire_row + (n - i) r_wire_col),
//      G(d) = g_off + d / (2^cell_bits - 1) (g_on - g_off)
//  (NeuroSim's ProcessingUnit.cpp GetColumnResistance and LoadInWeightData).
//  Inputs are a_bits integers applied bit-serially: pulse p drives the rows whose input bit p is 1
//  (two's complement for signed inputs, the top pulse weighing -2^(a_bits-1)). Every used column of
//  every array converts once per vector, pulse and row tile: G_col = sum of the driven cells' g.
//
// Accounting models (energies per conversion or per subarray read, summed over the batch):
//  * NeuroSim13: DNN+NeuroSim V1.3's SubArray::CalculatePower, conventionalParallel mode, 1T1R RRAM,
//    22 nm (SubArray.cpp, MultilevelSenseAmp.cpp, SarADC.cpp and the circuits they call):
//      adc    multilevel current-mode sense amp: P(R) * LatencyCol with LatencyCol = 1 ns at 22 nm,
//             P = c_s (L-1) + c_d exp(-k log10(R 0.5 / V_read)), R = 1 / G_col, and P = 1 uW for a
//             column with no driven row (GetColumnPower); or SAR: P (log2 L + 1) 1 ns with
//             P = (s_1 log2 L + s_0) + c_d exp(...). The cell current is inside this term.
//      array  bitline precharge C_BL V_read^2 per column plus the wordline C_WL VDD^2 per driven row,
//             times cols_per_adc (readDynamicEnergyArray)
//      encoder, switch_matrix, mux, shift_add: the multilevel SA encoder, the WL switch matrix (per
//             driven row plus its DFFs), the column mux and its decoder (divided by a_bits, as
//             NeuroSim does) and the weight/input shift-adders, per subarray read.
//    Only NeuroSim's default device and geometry are available (128 x 128, 8 columns per sense amp,
//    32 levels, 6 kOhm / 900 kOhm, R_access = 0.25 R_on): NeuroSim sizes its periphery from them.
//  * NeuroSim14: DNN+NeuroSim V1.4's SubArray::CalculatePower at its own defaults (SRAM cells, 1 bit,
//    conventionalParallel, 22 nm LSTP, 0.55 V; neurosim14.hpp): its energy model gives every driven row
//    the conductance 1 / (R_access + R_wire) whatever the cell stores, so nothing below depends on W:
//      adc    per conversion (L-1) Column_SwitchingE + (P(R) + refpower) LatencyCol, R = R_cell / n for
//             n driven rows (1 uW at n = 0), P V1.4's piecewise LSTP fit, refpower its shared reference
//             columns, LatencyCol its slowest reference's
//      array, switch_matrix, mux, shift_add: the wordlines and the WL switch matrix per driven row,
//             the switch matrix's DFFs, the column mux and its decoder, the shift-adders per read.
//    Only its defaults are available (offset mapping, no HW-aware periphery option).
//  * Mnsim20: MNSIM-2.0's crossbar and ADC models (Hardware_Model/Crossbar.py, ADC.py):
//      cell   V_read^2 G_col t_xbar per conversion, t_xbar = t_read + MNSIM's wire latency
//      adc    e_adc per conversion, whatever the current.
//  * Bitline: the driven cells alone, V_read^2 G_col t_read per conversion; no periphery.
//
// HW-aware periphery (hamqcore's options, off in every preset; README "HW-aware periphery"):
//  * adc_resolution PerColumn: each column (per conversion group) converts with the fewest levels
//    that read its largest possible digit sum losslessly (a column can never read more than the sum
//    of its stored digits), at most 2^adc_bits; the sense amp / ADC is charged with its own levels.
//  * skip_empty: a column with no ON cell in its group is not converted (it always reads 0). A read
//    runs only the column-mux cycles that hold a converted column (the sense amp of cols_per_adc
//    adjacent columns reads local column c in cycle c % cols_per_adc, as NeuroSim's mux groups
//    them); every per-read periphery term of NeuroSim's (array, switch matrix, mux, encoder,
//    shift-add) is proportional to numColMuxed, so a read running k of its m cycles is charged k/m
//    of it. A read with no cycle to run (an array with no ON cell in the group) is not done.
//  * rows_per_conversion: the rows of an array are converted in groups of this many (NeuroSim V1.4's
//    numRowParallel idea): each group is one read of the array, with its own conversions.
//  * complement (offset, two's complement): a column whose cells are mostly ON is stored inverted
//    (digit dmax - d) and its reading corrected digitally (S = nd dmax - S').
//  * column_order Digit: the columns of an array type hold digit d of every weight before digit
//    d - 1 (bit-sliced arrays, ISAAC's layout) instead of every digit of one weight side by side.
//
// Functional output: the ADC reads the digit sum S of a column (or, with CrossbarLayer::conductance,
// the column's conductance in digit units, its OFF-cell leakage removed after the conversion) with L = 2^adc_bits levels over
// [0, full_scale] (full_scale = adc_full_scale, or rows_per_conversion (2^cell_bits - 1) when 0):
// reading = step * ladder_level(S / step, L-1), step = max(1, full_scale / (L-1)) (digit sums are
// integers: no step is finer than one); exact when every sum a column can read is <= L-1 at step 1,
// or with the ideal ADC. Readings are shift-added over digits, pulses and tiles; with an exact ADC the
// output is the integer product x W^T.
#pragma once
#include <cstdint>
#include <cmath>
#include <string>
#include <vector>

#include "hamqcore/encoding.hpp"

namespace hamq {

// The ADC's level of a reading v with ladder step `step` (q = v / step >= 0): the nearest level, at most
// the top one; a reading on a boundary between two levels (within kLadderTie of a step) takes the even
// one (round half to even, as IEEE rounding does for exact ties, unbiased). The tolerance makes a
// reading exactly on a boundary (e.g. half of a column's identical cells driven under its own reference)
// read the same level whatever order its float sum took (the C++ kernel and hamqcore/readout.py sum in
// different orders): float rounding (~1e-15 step) never decides a level.
constexpr double kLadderTie = 1e-9;
inline double ladder_level(double q, double top) {
    const double t = q + 0.5;
    double l = std::floor(t + kLadderTie);          // the nearest level; t - l >= -kLadderTie
    const bool tie = t - l <= kLadderTie;           // q on the boundary just below level l
    const double half = 0.5 * l;                    // exact: l is a whole number
    const bool odd = std::floor(half) != half;
    l = tie && odd ? l - 1.0 : l;
    return l < top ? l : top;
}

enum class Model : int { NeuroSim13 = 0, Mnsim20 = 1, Bitline = 2, NeuroSim14 = 3 };
enum class Mapping : int { Offset = 0, Differential = 1, TwosComplement = 2 };
enum class AdcKind : int { Ideal = 0, Multilevel = 1, Sar = 2, Fixed = 3 };
enum class Roadmap : int { LP = 0, HP = 1 };
enum class AdcResolution : int { Fixed = 0, PerColumn = 1 };
enum class ColumnOrder : int { Weight = 0, Digit = 1 };

struct CrossbarConfig {
    Model model = Model::NeuroSim13;
    int rows = 128;
    int cols = 128;
    int cell_bits = 2;
    Mapping mapping = Mapping::Offset;
    bool reference_column = false;
    double g_on = 1.0 / 6e3;     // S
    double g_off = 1.0 / 900e3;  // S
    double v_read = 0.5;         // V
    double t_read = 10e-9;       // s: read pulse (Bitline) or device read latency (Mnsim20)
    double r_access = 1.5e3;     // Ohm in series with every cell
    double r_wire_row = 0.0;     // Ohm per cell pitch along a row (set by the presets)
    double r_wire_col = 0.0;     // Ohm per cell pitch along a column
    Roadmap roadmap = Roadmap::LP;
    AdcKind adc = AdcKind::Multilevel;
    int adc_bits = 5;
    int cols_per_adc = 8;
    int64_t adc_full_scale = 0;  // digit-sum full scale of the ADC; 0 = rows * (2^cell_bits - 1)
    double e_adc = 0.0;          // J per conversion (AdcKind::Fixed)
    // HW-aware periphery (see above)
    AdcResolution adc_resolution = AdcResolution::Fixed;
    bool skip_empty = false;
    int rows_per_conversion = 0;  // 0 = rows
    bool complement = false;
    ColumnOrder column_order = ColumnOrder::Weight;
    // The digital gain of a calibrated conductance readout (hamqcore/readout.py): every conversion's
    // reading is multiplied by a gain_bits-bit constant (0 = no gain); charged as component gain.
    int gain_bits = 0;
    // Calibrated references (hamqcore/readout.py adc_reference="calibrated"): a reference ladder per
    // array type and digit position, which the sense amps switch between (charged as component select).
    bool digit_references = false;
};

// The defaults of each accounting model, with every value's source in the .cpp.
CrossbarConfig preset_config(Model m);

// Empty when valid, else a message naming the field and the value.
std::string validate(const CrossbarConfig& c);
std::string validate_layer(const CrossbarConfig& c, int w_bits, int a_bits);

// The conductance (S) of a cell holding digit d = 0 .. 2^cell_bits - 1 at the array's mean position:
// 1 / (1 / G(d) + r_access + (cols + 1) / 2 r_wire_row + (rows + 1) / 2 r_wire_col). The energy
// path's model conductances (crossbar_conductance.cpp) and the functional path's cells
// (hamqcore/readout.py) both come from here. level_conductances: the same for cells holding levels
// v in [0, dmax] (G(v) = g_off + v / dmax (g_on - g_off): drifted cells).
std::vector<double> digit_conductances(const CrossbarConfig& c);
std::vector<double> level_conductances(const CrossbarConfig& c, const std::vector<double>& levels);

// The cells a layer's weights are stored as: digits[arr][d][o][k] (d = 0 the least significant) of
// the out x K weights w (range-checked by the caller), and each digit column's shift-add weight
// coef[arr * D + d], for the mapping's A array types and D digits (the functional path reads them).
void stored_digits(IntType w_type, const void* w, int64_t out, int64_t k, int w_bits, Mapping m, int cell_bits,
                   uint8_t* digits);
std::vector<double> digit_coefficients(Mapping m, int w_bits, int cell_bits);

// Digit columns per weight in one array type, and how many array types the mapping uses.
int mapping_digits(Mapping m, int w_bits, int cell_bits);
int mapping_arrays(Mapping m);
// Smallest and largest integer weight the mapping stores for w_bits.
int64_t mapping_level_min(Mapping m, int w_bits);
int64_t mapping_level_max(Mapping m, int w_bits);

// NeuroSim V1.3's digital gates at 22 nm (J), for the circuits outside its subarray that
// hamqcore.chip charges (the PE's register buffers, the adder trees, the activation unit): DFF.cpp
// DFF::CalculatePower of num_dff flip-flops clocked num_read times (validated: times Param.cpp's
// switching activity gamma, as NeuroSim's shift-adds; false, as its buffers), and Adder.cpp
// Adder::CalculatePower of num_adder ripple-carry adders of num_bit bits num_read times (times delta).
double neurosim13_dff_energy(Roadmap r, double num_read, double num_dff, bool validated);
double neurosim13_adder_energy(Roadmap r, int num_bit, double num_adder, double num_read);

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
    bool floor = false;       // every cell at its lowest conductance (the least energy of any weights)
    bool output = true;       // compute the functional output (energy alone is cheaper)
    bool energy = true;       // false: the functional output (or the calibration histograms) alone: no
                              // conductance sums, power law or wire deviation; energies and currents NaN
    // Functional output only (hamqcore/readout.py is the general model; these are its fast cases):
    const double* digit_full_scale = nullptr;  // [arrays * digits]: the ADC full scale of every digit
                                               // column (calibrated references), digit units
    const double* digit_gain = nullptr;  // [arrays * digits]: conductance readings / gain (calibrated)
    bool conductance = false; // read the cells' conductances (cell_bits <= 2): v = G_col / u with
                              // u = (g(dmax) - g(0)) / dmax, converted, then nd g(0) / u subtracted
    // Calibration (hamqcore/readout.py Histograms): > 0 histograms every conversion's ADC input (a
    // conversion with a driven row of a converted column; digit units, as the readout reads it,
    // leakage included) per digit column (arrays x digits), in bins of 1 / histogram_bins_per_unit,
    // with the least-squares gain's sums, instead of reading them (output must be false).
    double histogram_bins_per_unit = 0;
    // The cells as programmed, when they deviate from the model (hamqcore.crossbar.cell_draws, which
    // the functional path reads too): per digit column (arrays x digits x (out + reference column),
    // stored_digits' order) and row, [column][k]: the conductance factor f >= 0 of the cell and its
    // state s < n_states. A cell in state s storing digit d conducts f / (1 / G(v) + R) at its own
    // position, G(v) = g_off + v / dmax (g_on - g_off) with v = state_digits[s][d] in [0, dmax] (the
    // level its device holds: d as programmed, dmax or 0 when stuck, a retention-drifted level).
    // Energy only (the functional output stays the model's); nullptr: the model. The reference
    // column's copies in every array column tile share its cells.
    const double* cell_factor = nullptr;
    const uint8_t* cell_state = nullptr;
    const double* state_digits = nullptr;  // [n_states][dmax + 1]
    int n_states = 0;
};

// Energy components (J, whole batch); which are nonzero depends on the model.
// kReference .. kSelect: the circuits the HW-aware periphery options, the differential mapping and the
// functional options add to NeuroSim's subarray (charged under NeuroSim13; under NeuroSim14 only gain
// and select, with V1.4's mux gates; 0 with every preset's defaults):
//  * reference (adc_resolution PerColumn): a column whose largest digit sum exceeds the shared unit
//    ladder (2^adc_bits - 1) converts against its own reference ladder: NeuroSim V1.4's reference
//    columns (MultilevelSenseAmp.cpp CalculatePower, "1.4 update - reference column power": every
//    level boundary is a column whose current the sense amp's column model charges), not shared
//    (V1.4 shares one ladder among dumcolshared columns; a column's own ladder serves it alone).
//    Per conversion with a driven row: t_conv * sum_{j=0}^{L_c-2} P_dyn(G_j), G_j = n g(0) +
//    (j + 1/2) step (g(dmax) - g(0)) / dmax, step = S_max / (L_c - 1), P_dyn NeuroSim V1.3's
//    GetColumnPower conductance term. The shared unit ladder itself is not charged (as in V1.3).
//  * config: each column's configuration (ceil(log2 adc_bits) resolution bits with PerColumn, a
//    skip bit with skip_empty, an invert bit with complement) in flip-flops, read by each of the
//    array's ceil(cols / cols_per_adc) sense amps in every mux cycle run: dff(read_cycles, bits *
//    units).
//  * mask (skip_empty): the read's cycle mask (cols_per_adc flip-flops) for every read done and the
//    array's skip bit for every read: dff(reads, m) + dff(reads + skipped reads, 1).
//  * subtract (mapping Differential): the positive minus the negative array's partial sum of every
//    output, vector and conversion group: one adder of adc_bits + D + pulses bits (NeuroSim's
//    shiftAddInput output width).
//  * complement: for every vector and conversion group holding an inverted column, the group's
//    input sum X = sum of its input integers times dmax (rows - 1 adders, one more for dmax when
//    cell_bits > 1, of a_bits + ceil(log2 rows) + cell_bits bits), and per inverted column and
//    vector one subtraction dmax X - sum_p 2^p S'_p of adc_bits + pulses + cell_bits bits.
//  * gain (gain_bits > 0): every conversion's reading times its gain_bits-bit constant, a shift-add
//    multiplier of gain_bits - 1 adders of adc_bits + gain_bits bits.
//  * select (digit_references, or adc_resolution PerColumn): a sense amp
//    whose columns convert against different reference ladders (one per digit position; a column's
//    own ladder or the shared unit ladder) reaches each of its comparators' references through a
//    pass-gate mux driven by the column mux's own decoder: Mux.cpp Mux::CalculatePower per pass gate
//    that turns on (capTgGateN VDD^2 + 2 capTgDrain V_read^2, the column mux's gates), one per
//    reference line (2^adc_bits - 1 for the multilevel sense amp, 1 for the SAR's reference) and sense
//    amp whenever the ladder of the column it converts differs from that of the column it converted
//    last (in the cyclic order of the cycles a read runs; skipped columns switch nothing), every read.
//  Gates: NeuroSim V1.3's DFF.cpp and Adder.cpp models at 22 nm (neurosim13::dff_energy, adder_energy).
enum Component : int {
    kCell = 0, kAdc, kArray, kEncoder, kSwitchMatrix, kMux, kShiftAdd,
    kReference, kConfig, kMask, kSubtract, kComplement, kGain, kSelect, kNumComponents
};
const char* component_name(int c);

struct CrossbarResult {
    std::vector<double> y;    // N x out (empty without CrossbarLayer::output)
    double energy[kNumComponents] = {0};
    double sum_current = 0;   // A, summed over conversions
    double max_current = 0;   // A
    int64_t conversions = 0, idle_conversions = 0;  // idle: no driven row in the tile
    int64_t skipped_conversions = 0;                // not done: an empty column (skip_empty)
    int64_t subarray_reads = 0;                     // array reads: arrays x vectors x pulses x groups
    int64_t skipped_reads = 0;                      // not done: an empty array (skip_empty)
    int64_t read_cycles = 0;                        // mux cycles run by the reads done
    int64_t skipped_cycles = 0;                     // mux cycles of those reads not run (skip_empty)
    int64_t inverted_columns = 0;                   // stored complemented (complement)
    int64_t resolution_columns[kMaxBits + 1] = {0};           // columns (per group) by ADC bits; 0 = skipped
    int64_t driven_rows = 0;                        // summed over vectors, pulses and row tiles
    int64_t pulses = 0, row_tiles = 0, col_tiles = 0, arrays = 0;
    int64_t columns = 0;                            // used physical columns (incl. reference)
    int64_t on_cells = 0, cells = 0;                // cells with a nonzero digit / all used cells
    double latency = 0;                             // s, whole batch, arrays in parallel
    // CrossbarLayer::histogram_bins_per_unit > 0: per digit column (arrays x digits), its conversions'
    // ADC inputs binned ([column][hist_bins]), the sums of (reading - leakage) x S and of S^2 (S the
    // ideal digit sum)
    std::vector<int64_t> hist;
    int64_t hist_bins = 0;
    std::vector<double> hist_vs, hist_ss;
    int64_t bad_w = -1, bad_x = -1;                 // first out-of-range element, or -1
};

// Simulator bound to one configuration; per-configuration tables are built once.
class Crossbar {
   public:
    explicit Crossbar(const CrossbarConfig& config);  // config must be valid
    const CrossbarConfig& config() const { return cfg_; }
    CrossbarResult simulate(const CrossbarLayer& layer, int n_threads) const;

   private:
    CrossbarConfig cfg_;
    int64_t s_stride_;
    std::vector<double> adc_level_;   // [s_stride]: ADC reading of a digit sum; empty when exact
};

}  // namespace hamq
