// Bit-plane packing of quantized weights.
//
// Layout. A weight tensor is viewed as `rows` vectors of length k (k = the last axis, the axis that
// runs down one crossbar column; rows = the product of the leading axes). Each weight's code (see
// encoding.hpp) is split into D = ceil(stored_bits / cell_bits) digits of cell_bits bits, digit 0
// least significant; one plane holds one digit of every weight. Within a plane a vector occupies
// W = ceil(k * cell_bits / 64) little-endian uint64 words: weight j sits in word j / (64/cell_bits)
// at bit offset (j % (64/cell_bits)) * cell_bits. Padding bits are zero.
// The output is [A][D][rows][W] with A = 2 for the differential encoding (array 0 holds the codes
// max(q,0), array 1 holds max(-q,0)) and A = 1 otherwise.
#pragma once
#include <cstdint>
#include "hamqcore/encoding.hpp"

namespace hamq {

inline int bitplane_digits(int bits, Encoding e, int cell_bits) {
    return (stored_bits(bits, e) + cell_bits - 1) / cell_bits;
}
inline int bitplane_arrays(Encoding e) { return e == Encoding::Differential ? 2 : 1; }
inline int64_t bitplane_words(int64_t k, int cell_bits) {
    const int64_t per = 64 / cell_bits;
    return (k + per - 1) / per;
}

// Returns the flat index of the first out-of-range weight (out unspecified), or -1.
int64_t pack_bitplanes(IntType t, const void* q, int64_t rows, int64_t k, int bits, Encoding e,
                       int cell_bits, uint64_t* out, int n_threads);

// Inverse of pack_bitplanes into int8 (bits <= 8) or int16 weights. Padding bits are ignored.
// Returns the flat index of the first weight whose stored digits are not the encoding of any
// in-range level (e.g. both differential arrays set, or a digit beyond stored_bits), or -1.
int64_t unpack_bitplanes(const uint64_t* planes, int64_t rows, int64_t k, int bits, Encoding e,
                         int cell_bits, int8_t* out8, int16_t* out16, int n_threads);

}  // namespace hamq
