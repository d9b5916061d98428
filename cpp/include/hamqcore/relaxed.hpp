// Relaxed (differentiable) Hamming weight of real-valued weights x = w / scale.
//
// Linear relaxation: with k = floor(x), H(x) = HW(k) + (x - k) (HW(k+1) - HW(k)), i.e. the
// piecewise-linear interpolation of the integer HW. H'(x) = HW(k+1) - HW(k) on (k, k+1); at an
// integer it is the mean of the two one-sided derivatives. Outside [-(2^(b-1)-1), 2^(b-1)-1] x is
// clamped: value at the bound, derivative 0 (so at a bound itself the derivative is half the inner
// one-sided slope).
// Cosine relaxation: H(x) = HW(k) + (HW(k+1) - HW(k)) (1 - cos(pi (x-k))) / 2, smooth, derivative 0
// at integers. Both equal HW exactly at integers.
#pragma once
#include <cstdint>
#include "hamqcore/encoding.hpp"

namespace hamq {

// Optional per-bit costs for the penalty: cost[p] (with per_row, cost[r * bits + p] for row r) is
// the price of a 1 at bit p (p = 0 the LSB) of a weight's code (encode() in encoding.hpp), finite
// and >= 0. The penalty then relaxes the level cost C(k) = sum_p cost[p] bit_p(encode(k)) exactly as
// it relaxes HW(k) (the two agree when every cost is 1). cost == nullptr: the HW.
struct BitCost {
    const double* cost = nullptr;
    bool per_row = false;
};

// All return the index of the first non-finite x, or -1. Results never depend on n_threads.
int64_t relaxed_hw(const float* x, int64_t n, int bits, Encoding e, Relaxation r, float* value,
                   float* derivative, int n_threads);
int64_t relaxed_hw(const double* x, int64_t n, int bits, Encoding e, Relaxation r, double* value,
                   double* derivative, int n_threads);

// Fused forward + backward: *value = sum_i H(x_i) * value_scale, grad[i] = H'(x_i) * value_scale.
// value_scale is 1 for a sum and 1/n for a mean. The elementwise values are never stored; the
// sum is taken over fixed-size blocks in a fixed order, so it is bitwise reproducible.
int64_t relaxed_hw_penalty(const float* x, int64_t n, int bits, Encoding e, Relaxation r,
                           double value_scale, double* value, float* grad, int n_threads);
int64_t relaxed_hw_penalty(const double* x, int64_t n, int bits, Encoding e, Relaxation r,
                           double value_scale, double* value, double* grad, int n_threads);

// The same penalty of x = w / scale[r] for a rows x cols matrix w with one scale per row, fused:
// grad_w = H'(x) / s * value_scale and grad_scale[r] = -sum_j H'(x) w / s^2 * value_scale, so no
// scaled copy of w is ever made. scale must be finite and > 0 (returns rows*cols + r for the first
// bad scale r). Returns the index of the first non-finite w, or -1.
// With scale_from_max, scale is an output: each row's max|w| / (2^(bits-1) - 1) (1 for an all-zero
// row) is computed first and used (the symmetric max quantization step); grad_scale is then 0.
int64_t relaxed_hw_penalty_rows(const float* w, int64_t rows, int64_t cols, float* scale,
                                bool scale_from_max, int bits, Encoding e, Relaxation r,
                                double value_scale, double* value, float* grad_w, float* grad_scale,
                                int n_threads, BitCost bit_cost = {});
int64_t relaxed_hw_penalty_rows(const double* w, int64_t rows, int64_t cols, double* scale,
                                bool scale_from_max, int bits, Encoding e, Relaxation r,
                                double value_scale, double* value, double* grad_w,
                                double* grad_scale, int n_threads, BitCost bit_cost = {});

}  // namespace hamq
