// Internal: the crossbar simulator's inner kernel (compiled per ISA tier, see kernel_table.hpp): a
// binary GEMM (AND + popcount of packed input and weight bit-planes) whose per-column counts are
// reduced to conductance / energy sums and the functional output without ever being stored.
//
// Columns are grouped: group g holds the cols_per_group columns (digits of every array type) of
// one output, or of the reference weight, so an output is owned by exactly one task and the
// floating-point accumulation order never depends on n_threads. Every column has cell_bits weight
// planes (its digit bits) and planes_per_col counts: one per plane plus, for cell_bits == 2, the
// count of both bits set, so that the driven cells' conductance is exact for every digit value:
// G0 = g_row nd + sum_k g_plane[k] count_k.
#pragma once
#include <climits>
#include <cstdint>

#include "hamqcore/crossbar.hpp"  // ladder_level

namespace hamq {

// How one stored column holds digit d of array type `arr` of a weight q (the mapping's rule, built by
// crossbar_stages.hpp digit_rule, its one home): u = (max(sign q, floor) + add) & keep and the digit
// (u >> shift) & mask, in 32-bit arithmetic (range-checked weights: |q| <= 2^15). Offset: u = q +
// 2^(b-1); differential: max(q, 0) or max(-q, 0); two's complement: q & (2^(b-1) - 1), its sign
// column bit b-1 of q. A rule with mask 0 stores digit 0 (nothing stored).
struct DigitRule {
    int32_t sign = 1, floor = INT32_MIN, add = 0;
    uint32_t keep = ~0u, mask = 0;
    int shift = 0;
};

inline uint32_t digit_of(int32_t q, const DigitRule& r) {
    int32_t v = r.sign * q;
    v = v > r.floor ? v : r.floor;
    return ((uint32_t(v + r.add) & r.keep) >> r.shift) & r.mask;
}

struct XbarPopcountArgs {
    int64_t n_vectors = 0;     // N input vectors
    int n_tiles = 0;           // row tiles T (wordline blocks of `rows` inputs)
    int words_per_tile = 0;    // ceil(rows / 64)
    int a_planes = 0;          // input bit planes (read pulses) per vector
    int cell_bits = 1;         // digit sum S = sum over j < cell_bits of 2^j count_j
    int planes_per_col = 1;    // counts per column (cell_bits, or 3 for cell_bits == 2)
    int64_t n_groups = 0;      // column groups G
    int cols_per_group = 0;    // columns per group
    const uint64_t* x = nullptr;          // [N][T][a_planes][words_per_tile] driven-row masks
    const uint64_t* w = nullptr;          // [T][words_per_tile][cell_bits][G * cols_per_group]
    const double* plane_coef = nullptr;   // [a_planes] shift-add weight of each input bit
    const double* col_coef = nullptr;     // [cols_per_group] shift-add weight of each column
    const int64_t* group_mult = nullptr;  // [G] physical copies of the group (energy multiplicity)
    const double* adc_level = nullptr;    // [s_stride]: ADC reading of a digit sum; nullptr = exact
    int64_t s_stride = 0;                 // largest digit sum + 1
    // Per (tile, column) [n_tiles][n_groups * cols_per_group], each nullptr when not used:
    const double* col_step = nullptr;     // reading = step * ladder_level(S / step, lmax); 0 = exact
    const double* col_inv_step = nullptr; // a conductance readout: 1 / col_step (null: an ideal ADC)
    const double* col_lmax = nullptr;     //   (replaces adc_level)
    const uint8_t* col_inverted = nullptr;  // stored complemented: S = nd * cell_max - reading
    int cell_max = 1;                     // largest digit, 2^cell_bits - 1
    double g_unit = 0.0;                  // > 0: read conductances in units of g_unit (S) instead of
                                          //   digit sums, the leakage nd g_row / g_unit removed after the ADC
    const double* digit_gain = nullptr;   // [cols_per_group]: conductance readings divided by it
    const float* conv_weight = nullptr;   // factor on the column's f terms (0 = not converted)
    double g_row = 0.0;                   // model conductance of a driven cell holding digit 0 (S)
    double g_plane[4] = {0, 0, 0, 0};     // added conductance per driven cell with plane k set (S)
    bool power_law = false;               // also sum f = (scale G0)^exponent
    bool energy = true;                   // false: no conductance sums (the functional output alone)
    double scale = 1.0, exponent = 1.0;
    int n_threads = 1;
    // Calibration (CrossbarLayer::histogram_bins_per_unit): every conversion with a driven row of a
    // column not skipped binned by its ADC input v (digit units, leakage included) per column of a
    // group (its digit column), with the gain's sums; then no readings are made.
    const uint8_t* col_skip = nullptr;    // per (tile, column): not converted
    double hist_per_unit = 0.0;           // > 0: histogram mode, bins per digit unit
    int64_t hist_bins = 0;                // bins per column: v beyond the last reads as the last
    int64_t* hist = nullptr;              // [cols_per_group][hist_bins] (written)
    double* hist_vs = nullptr;            // [cols_per_group] sum of (v - leakage) S (written)
    double* hist_ss = nullptr;            // [cols_per_group] sum of S^2 (written, exact)
    // Outputs (written, not accumulated); sums run over conversions, copies included:
    double* y = nullptr;                  // [N][G] functional output; nullptr: energy only
    double* g_sum = nullptr;              // sum of G0
    double* g_max = nullptr;              // largest G0
    double* f_sum = nullptr;              // power_law: sum of f over conversions with a driven row
};

}  // namespace hamq
