// Hamming weight (ON-cell count) of quantized weights. Pure C++17: raw pointers and sizes.
#pragma once
#include <cstdint>
#include "hamqcore/encoding.hpp"

namespace hamq {

// Each function reads n contiguous integers of type `t` at `q`. It returns the flat index of the
// first element outside the symmetric range for `bits` (outputs are then unspecified), or -1.
// n_threads >= 1. Results never depend on n_threads.

// out[i] = ON cells of q[i].
int64_t hamming_weight(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out,
                       int n_threads);
// *total = sum of ON cells (exact, 64-bit).
int64_t total_hamming_weight(IntType t, const void* q, int64_t n, int bits, Encoding e,
                             uint64_t* total, int n_threads);
// hist[h] = number of weights with h ON cells, h = 0..bits (bits + 1 entries, overwritten).
int64_t hw_histogram(IntType t, const void* q, int64_t n, int bits, Encoding e, int64_t* hist,
                     int n_threads);

}  // namespace hamq
