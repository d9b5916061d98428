// Internal: the stages of Crossbar::simulate (crossbar.cpp), each in its own file, sharing one Plan.
//
//   make_plan          crossbar_plan.cpp      geometry: tiles, conversion groups, columns, placement
//   pack_weights       crossbar_weights.cpp   weights into bit-planes with per-column statistics,
//   plan_columns                              complement coding; skipped columns, ADC levels, mux cycles
//   pack_inputs        crossbar_inputs.cpp    inputs into bit-planes; driven rows per conversion group
//   conductance_model  crossbar_conductance.cpp  the kernel's conductances at the mean position and
//   cell_deviation                            the exact deviation from them: positions, drawn cells
//   run_kernel         crossbar_readings.cpp  the binary GEMM: conductance sums, ADC readings, output
//   account            crossbar_accounting.cpp   conversions, reads, cycles and energy by component
#pragma once
#include <cstdint>
#include <vector>

#include "crossbar_kernel.hpp"
#include "hamqcore/crossbar.hpp"
#include "neurosim13.hpp"

namespace hamq::xbar {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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

// The ADC: L levels over [0, full_scale] digit units, in steps of at least one digit (digit sums are
// integers); readings saturate at the top level; a boundary reads the even level (ladder_level).
double adc_step(int64_t full_scale, int64_t levels);
double adc_reading(int64_t s, double step, int64_t levels);

// The rule of digit d (0 = least significant) of array type `arr` (crossbar_kernel.hpp DigitRule):
// the one home of the mappings' digits.
inline DigitRule digit_rule(Mapping map, int arr, int d, int D, int cb, int b) {
    DigitRule r;
    r.mask = (1u << cb) - 1;
    r.shift = d * cb;
    switch (map) {
        case Mapping::Offset:
            r.add = int32_t(1) << (b - 1);
            break;
        case Mapping::Differential:  // array 0 stores max(q, 0), array 1 max(-q, 0)
            r.sign = arr == 0 ? 1 : -1;
            r.floor = 0;
            break;
        case Mapping::TwosComplement:
            if (d == D - 1) {  // the sign column: bit b-1 of q mod 2^b
                r.shift = b - 1;
                r.mask = 1;
            } else {
                r.keep = (uint32_t(1) << (b - 1)) - 1;
            }
            break;
    }
    return r;
}

// Digit d of array type `arr` of n consecutive weights (range-checked, so |q| <= 2^15 fits the
// 32-bit arithmetic).
template <class T, class O>
void extract_digits(const T* w, int64_t n, Mapping map, int arr, int d, int D, int cb, int b, O* out) {
    const DigitRule r = digit_rule(map, arr, d, D, cb, b);
    for (int64_t i = 0; i < n; ++i) out[i] = O(digit_of(int32_t(w[i]), r));
}

// The most bit-planes one output stores (A * D * cb): 2 * 4 * 4 for 16-bit differential weights on
// 4-bit cells, 2 * 15 for them on 1-bit cells (w_bits <= 16, cell_bits <= 4).
constexpr int kMaxPlanes = 64;

// Row blocks of up to 64 rows that never cross a conversion group: (group, word, first row, end).
struct Block {
    int64_t tc, word, r0, r1;
};

// Everything the stages share about one layer on the arrays of one configuration.
struct Plan {
    const CrossbarConfig& c;
    const CrossbarLayer& L;
    int n_threads;
    Mapping map = Mapping::Offset;
    int A = 0, D = 0, cb = 0, P = 0, PC = 0, b = 0;  // array types, digits, cell bits, pulses, counts/column, w bits
    bool ref = false;                     // a reference column per array column tile
    int64_t R = 0, K = 0, TA = 0;         // rows per array, rows used, array row tiles
    int64_t cols_eff = 0, wcols = 0, col_tiles = 0;  // weight columns per array, per array type; column tiles
    int64_t RC = 0, T = 0, WPT = 0;       // rows per conversion, conversion groups, 64-row words per group
    std::vector<int64_t> tc_row0 = {}, tc_rows = {}, tc_tile = {};  // per conversion group: first row, rows, tile
    int64_t cpg = 0, G = 0, ncols = 0, ld = 0;  // kernel columns per group, groups, kernel columns, plane stride
    uint64_t dmask = 0;                   // largest digit
    int64_t half = 0;                     // 2^(b-1)
    int64_t m = 0, narr = 0;              // columns per sense amp (mux cycles per read), arrays per group
    std::vector<Block> blocks = {};
    std::vector<DigitRule> rules = {};    // [A * D]: how column arr * D + d of a group stores its digit
    std::vector<double> col_coef = {};    // shift-add weight of every column of a group
    // Physical place of kernel column kc = g * cpg + arr * D + d (the reference group: one copy per
    // array column tile, in its last D columns; col_tile = -1).
    void place(int64_t kc, int64_t& col_tile, int64_t& local) const;
    // f(array, local) for every physical copy of kernel column kc: its array within the conversion
    // group (column tile * A + array type) and its column in that array.
    template <class F>
    void for_copies(int64_t kc, F&& f) const {
        int64_t ct, local;
        place(kc, ct, local);
        const int64_t arr = (kc % cpg) / D;
        for (int64_t k2 = ct < 0 ? 0 : ct; k2 < (ct < 0 ? col_tiles : ct + 1); ++k2) f(k2 * A + arr, local);
    }
    int64_t copies(int64_t kc) const { return kc / cpg == L.out ? col_tiles : 1; }  // physical copies
};

// The first weight and input outside the mapping's and the activations' range (-1 when none).
void check_ranges(const CrossbarConfig& c, const CrossbarLayer& L, int n_threads, CrossbarResult& r);
// The plan; fills the result's geometry (arrays, tiles, columns, cells).
Plan make_plan(const CrossbarConfig& c, const CrossbarLayer& L, int n_threads, CrossbarResult& r);

struct StoredWeights {
    std::vector<uint64_t> wp;                    // [T][WPT][cb][ncols] weight bit-planes
    std::vector<int32_t> st_on, st_sum, st_full;  // per (group, column): nonzero digits, digit sum, digits == dmax
    std::vector<uint8_t> inverted;               // per (group, column): stored complemented (complement)
};
StoredWeights pack_weights(const Plan& p, CrossbarResult& r);

struct Columns {
    bool per_column;
    int levels_fixed;
    std::vector<uint8_t> skip;        // per (group, column): not converted (skip_empty)
    std::vector<int32_t> levels;      // per (group, column): ADC levels
    std::vector<int64_t> cycles;      // per (group, array): mux cycles a read runs
};
Columns plan_columns(const Plan& p, const StoredWeights& sw);

struct Inputs {
    std::vector<uint64_t> xp;                  // [N][T][P][WPT] driven-row masks
    std::vector<int64_t> driven_hist;          // [T][RC + 1]: (vector, pulse) reads of a group by driven rows
    std::vector<int64_t> driven_tc, idle_tc;  // per group: driven rows, and (vector, pulse) reads with none
    uint64_t amask;
};
Inputs pack_inputs(const Plan& p);

struct Conductance {
    XbarPopcountArgs a;                        // g_row and g_plane filled in
    std::vector<double> inv_g, g_model;        // per digit: 1 / G_device, the model's G at the mean position
    bool neurosim;
    neurosim13::Sense sense;
    double scale;                              // NeuroSim scales R_col by 0.5 V / V_read
    std::vector<float> conv_weight;            // per (group, column): conversion time (ns), 0 when skipped
};
Conductance conductance_model(const Plan& p, const Columns& cols);

// Sums over conversions of (G - G_model), plain and weighted for the sense amp's power law.
struct Deviation {
    double g_dev = 0.0, g_dev_w = 0.0;
};
Deviation cell_deviation(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in,
                         const Conductance& cond);

struct KernelSums {
    double g_sum = 0.0, g_max = 0.0, f_sum = 0.0;
};
KernelSums run_kernel(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in,
                      Conductance& cond, const std::vector<double>& adc_level, int64_t s_stride, CrossbarResult& r);

void account(const Plan& p, const StoredWeights& sw, const Columns& cols, const Inputs& in, const Conductance& cond, const KernelSums& k,
             const Deviation& dev, CrossbarResult& r);

}  // namespace hamq::xbar
