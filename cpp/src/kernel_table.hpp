// Internal: the hot kernels are compiled once per instruction-set tier (isa_*.cpp include
// kernels_impl.hpp with different compiler flags); each tier exports one table of entry points
// and dispatch.cpp forwards the public API to the active table.
#pragma once
#include <cstdint>
#include "hamqcore/encoding.hpp"
#include "hamqcore/relaxed.hpp"
#include "crossbar_kernel.hpp"

namespace hamq {

// One layer's HW-aware rounding pass over its rows (rounding.hpp): u is the k x k upper Cholesky
// factor of the damped H^-1 (row-major, full storage), table[q + hi] the level costs.
struct RoundRowsArgs {
    const double* w = nullptr;      // rows x k
    const double* scale = nullptr;  // rows
    const double* u = nullptr;      // k x k
    const double* table = nullptr;  // 2 hi + 1 level costs
    int64_t rows = 0, k = 0;
    int bits = 8, radius = 0;
    const double* row_weight = nullptr;  // rows: r_o, the units of each row's output error
    double lam = 0.0;
    int32_t* q = nullptr;           // rows x k out
    int n_threads = 1;
};

struct KernelTable {
    const char* name;
    int64_t (*hw_map)(IntType, const void*, int64_t, int, Encoding, uint8_t*, int);
    int64_t (*hw_total)(IntType, const void*, int64_t, int, Encoding, uint64_t*, int);
    int64_t (*hw_hist)(IntType, const void*, int64_t, int, Encoding, int64_t*, int);
    int64_t (*relaxed_f32)(const float*, int64_t, int, Encoding, Relaxation, float*, float*, int);
    int64_t (*relaxed_f64)(const double*, int64_t, int, Encoding, Relaxation, double*, double*, int);
    // the fused penalty (relaxed.hpp); the unscaled one is 1 row, scale 1, grad_scale nullptr
    int64_t (*penalty_rows_f32)(const float*, int64_t, int64_t, float*, bool, int, Encoding,
                                Relaxation, double, double*, float*, float*, int, BitCost);
    int64_t (*penalty_rows_f64)(const double*, int64_t, int64_t, double*, bool, int, Encoding,
                                Relaxation, double, double*, double*, double*, int, BitCost);
    void (*xbar_popcount)(const XbarPopcountArgs&);
    // sum_i drive[i] (1 / (inv_g[d_i] + r + r_row[i]) - g_model[d_i]) over i < n, d_i = digit_of(q[i],
    // rule) ^ invert, and (in *model) sum_i drive[i] g_model[d_i]: a column's conductance deviation
    // from the kernel's model (single precision terms: the deviation is a few % of G and needs ~1e-5
    // of itself). The digit tables inv_g, g_model, r_model hold 16 entries (cell_bits <= 4; unused
    // ones padded).
    double (*xbar_deviation)(const int32_t* q, const DigitRule& rule, uint32_t invert, const float* drive,
                             const float* r_row, int64_t n, const float* inv_g, const float* g_model,
                             const float* r_model, float r, double* model);
    // planes[k * cb + j] bit i = bit j of digit_of(q[i], rules[k]), for i < 64, k < n_rules, j < cb:
    // a 64-row block of one output's stored columns into their bit-planes.
    void (*digit_planes)(const int32_t* q, const DigitRule* rules, int n_rules, int cb, uint64_t* planes);
    // planes[b] bit r = bit b of codes[r], for r < 64 and b < nbits (a 64-row bit transpose).
    void (*transpose_bits)(const uint16_t* codes, int nbits, uint64_t* planes);
    // the upper factor of the rounding's inverse Hessian (rounding.cpp); b is overwritten
    bool (*factor_upper)(double* b, int64_t k, double* u, int n_threads);
    void (*round_rows)(const RoundRowsArgs&);
    // rounding.hpp quantize_rows
    int64_t (*quantize_rows_f32)(const float*, int64_t, int64_t, int, const float*, float*, int16_t*, int);
    int64_t (*quantize_rows_f64)(const double*, int64_t, int64_t, int, const double*, double*, int16_t*, int);
    // rounding.hpp fake_quantize, fake_quantize_backward, abs_max
    void (*fake_quantize_f32)(const float*, int64_t, float, float, float, float*, int);
    void (*fake_quantize_f64)(const double*, int64_t, double, double, double, double*, int);
    void (*fake_quantize_backward_f32)(const float*, const float*, int64_t, float, float, float, float*, int);
    void (*fake_quantize_backward_f64)(const double*, const double*, int64_t, double, double, double, double*, int);
    float (*abs_max_f32)(const float*, int64_t, int);
    double (*abs_max_f64)(const double*, int64_t, int);
};

const KernelTable* kernels_baseline();
const KernelTable* kernels_avx2();    // nullptr when not built
const KernelTable* kernels_avx512();  // nullptr when not built
const KernelTable& active_kernels();

}  // namespace hamq
