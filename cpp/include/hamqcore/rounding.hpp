// Gradient-free HW-aware rounding of one layer (GPTQ / OBQ-style error feedback with a Hamming-weight
// price): integer weights Q minimising, for every output row o with step s_o,
//
//     r_o (w_o - s_o q_o)^T H (w_o - s_o q_o)  +  lam * sum_k C(q_ok)
//
// where H = X^T X is the layer's calibration Hessian (K x K, X the layer inputs as rows), r_o >= 0 a
// weight per row that sets the units of the output error (hamqcore.rounding passes 1 / (the layer's
// ||W X||^2 / weights): relative output error against ON cells per weight), and C(q) the level's cost:
// its HW in the encoding, or sum_p bit_cost[p] bit_p(code(q)) (relaxed.hpp's BitCost).
//
// The pass (Frantar et al., GPTQ, ICLR 2023; Frantar & Alistarh, OBQ, NeurIPS 2022): with U the
// upper Cholesky factor of H^-1 (H damped: H + damp * mean(diag H) I), the weights of a row are fixed
// in input order; weight i, at its current value x (in levels, already corrected for the weights fixed
// before it), takes the level q within `radius` of round(x) that minimises
//     r_o s_o^2 (x - q)^2 / U_ii^2 + lam C(q)
// (the first term is the growth of the row's loss when the remaining weights are re-optimised, OBQ's
// (w - q)^2 / [H_F^-1]_ii), and the remaining weights absorb the error: x_j -= (x - q) / U_ii * U_ij
// for j > i. radius = 0 and lam = 0 is GPTQ. Inputs that never fire in the calibration data (H_ii = 0)
// get H_ii = 1 (their weights keep their value unless the cost moves them; GPTQ zeroes them, which
// changes the output on data where they do fire).
//
// Rows are independent and each is computed serially, so the result never depends on n_threads.
#pragma once
#include <cstdint>

#include "hamqcore/encoding.hpp"
#include "hamqcore/relaxed.hpp"

namespace hamq {

struct RoundingStatus {
    int64_t bad_w = -1;      // first non-finite weight, or -1
    int64_t bad_h = -1;      // first non-finite or asymmetric H entry, or -1
    int64_t bad_scale = -1;  // first scale that is not finite and > 0, or -1
    int64_t bad_row_weight = -1;  // first row weight that is not finite and >= 0, or -1
    bool not_psd = false;    // damped H is not positive definite (H was not X^T X)
    int64_t dead_inputs = 0; // inputs with H_ii == 0
};

// Weights onto the integer grid of `bits`-bit symmetric levels, row by row (qmax = 2^(bits-1) - 1):
// q = clamp(round(w / step_r), -qmax, qmax), round half to even, every operation in T's IEEE arithmetic
// (bit for bit torch.round(w / step).clamp(-qmax, qmax)). step_in: each row's step (finite, > 0), or
// nullptr for the max step max_k |w_rk| / qmax (1 for an all-zero row; hamqcore.ops.max_step), written
// to step_out. One pass per row (two without step_in). Returns the flat index of the first
// non-finite weight (then q and the steps are unspecified), or -1.
int64_t quantize_rows(const float* w, int64_t rows, int64_t k, int bits, const float* step_in, float* step_out,
                      int16_t* q, int n_threads);
int64_t quantize_rows(const double* w, int64_t rows, int64_t k, int bits, const double* step_in, double* step_out,
                      int16_t* q, int n_threads);

// Fake quantization onto a per-tensor grid (quantization-aware training's activations):
// y = clamp(round(x / step), lo, hi) * step, round half to even, every operation in T's IEEE
// arithmetic (bit for bit torch.clamp(torch.round(x / step), lo, hi) * step; NaN stays NaN). step > 0
// and lo <= hi are the caller's. Elementwise: the same bits for any n_threads.
void fake_quantize(const float* x, int64_t n, float step, float lo, float hi, float* y, int n_threads);
void fake_quantize(const double* x, int64_t n, double step, double lo, double hi, double* y, int n_threads);
// Its straight-through gradient as autograd takes it through those operations: gx = (g * step) / step
// where lo <= round(x / step) <= hi, else 0.
void fake_quantize_backward(const float* x, const float* g, int64_t n, float step, float lo, float hi, float* gx,
                            int n_threads);
void fake_quantize_backward(const double* x, const double* g, int64_t n, double step, double lo, double hi,
                            double* gx, int n_threads);
// max |x| over n elements (NaN when one is NaN, 0 when n = 0): one read pass.
float abs_max(const float* x, int64_t n, int n_threads);
double abs_max(const double* x, int64_t n, int n_threads);

// w: rows x k (row-major), h: k x k (symmetric), scale and row_weight: rows, q: rows x k output.
// bit_cost.per_row is not supported here (one cost vector for the layer).
RoundingStatus hw_aware_round(const double* w, int64_t rows, int64_t k, const double* h,
                              const double* scale, const double* row_weight, int bits, Encoding e,
                              double lam, int radius, double damp, BitCost bit_cost, int32_t* q,
                              int n_threads);

}  // namespace hamq
