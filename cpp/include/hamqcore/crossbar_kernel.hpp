// The crossbar simulator's inner kernel: a binary GEMM (AND + popcount of packed input and weight
// bit-planes) whose per-column results are reduced to energy terms and the functional output
// without ever being stored. crossbar.hpp builds its arguments from a layer description.
//
// Columns are grouped: group g holds the cols_per_group columns (digits of the positive and
// negative arrays, or of the single offset array) that belong to one output, so an output is owned
// by exactly one task and the floating-point accumulation order never depends on n_threads.
#pragma once
#include <cstdint>

namespace hamq {

struct XbarPopcountArgs {
    int64_t n_vectors = 0;     // N input vectors
    int n_tiles = 0;           // row tiles T (wordline blocks of `rows` inputs)
    int words_per_tile = 0;    // ceil(rows / 64)
    int a_planes = 0;          // input bit planes (read pulses) per vector
    int cell_bits = 1;         // weight bit-planes per column (bits per cell)
    int64_t n_groups = 0;      // column groups G (outputs, plus one reference group for offset)
    int cols_per_group = 0;    // columns per group
    const uint64_t* x = nullptr;          // [N][T][a_planes][words_per_tile] driven-row masks
    const uint64_t* w = nullptr;          // [T][words_per_tile][G * cols_per_group * cell_bits]
    const double* plane_coef = nullptr;   // [a_planes] shift-add weight of each input bit
    const double* col_coef = nullptr;     // [cols_per_group] shift-add weight of each column
    const int64_t* group_mult = nullptr;  // [G] physical copies of the group (energy multiplicity)
    const double* adc_energy = nullptr;   // [(rows+1) * s_stride]: energy of one conversion given
                                          // (driven rows, digit sum); nullptr = no ADC energy
    const double* adc_level = nullptr;    // [s_stride]: ADC reading of a digit sum; nullptr = exact
    int64_t s_stride = 0;                 // largest digit sum + 1
    double g_leak = 0.0;                  // conductance of an OFF cell (S)
    double g_step = 0.0;                  // conductance per unit digit (S)
    int n_threads = 1;
    // Outputs (written, not accumulated):
    double* y = nullptr;                  // [N][G] functional output before reference subtraction
    double* adc_energy_sum = nullptr;     // sum over conversions of the ADC energy
    uint64_t* digit_sum = nullptr;        // sum over conversions of the digit sum S (x multiplicity)
    double* max_conductance = nullptr;    // largest column conductance seen
};

}  // namespace hamq
