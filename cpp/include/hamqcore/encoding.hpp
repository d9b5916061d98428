// Cell encodings of signed quantized weights, and the per-weight "code" whose popcount is the
// number of ON cells. Everything here is `static inline` on purpose: this header is compiled into
// several ISA-specific translation units (baseline, AVX2, AVX-512) and internal linkage guarantees
// the linker never folds an AVX-512 copy of a helper into the baseline path.
#pragma once
#include <cstdint>

namespace hamq {

// Weights are integers q in the symmetric range [-(2^(bits-1) - 1), 2^(bits-1) - 1], 2 <= bits <= 16.
enum class Encoding : int {
    Differential = 0,   // positive array holds max(q,0), negative array max(-q,0): ON cells = popcount(|q|)
    SignMagnitude = 1,  // |q| in bits-1 magnitude bits plus a sign bit: popcount(|q|) + (q < 0)
    TwosComplement = 2, // q mod 2^bits
    Offset = 3,         // q + 2^(bits-1)  (always in [1, 2^bits - 1])
};

enum class IntType : int { I8 = 0, I16 = 1, I32 = 2, I64 = 3 };

// How the relaxed HW interpolates between neighbouring integer levels.
enum class Relaxation : int { Linear = 0, Cosine = 1 };

constexpr int kMinBits = 2;
constexpr int kMaxBits = 16;

static inline int64_t level_max(int bits) { return (int64_t(1) << (bits - 1)) - 1; }
static inline int64_t level_min(int bits) { return -level_max(bits); }

// Number of stored bits per weight that carry data in one array of the encoding: the magnitude
// bits for the differential mapping (each of its two arrays), all `bits` for the others.
static inline int stored_bits(int bits, Encoding e) {
    return e == Encoding::Differential ? bits - 1 : bits;
}

// Unsigned code of q in the given encoding (q assumed in range). For Differential this is |q|,
// the code held by whichever of the two arrays stores q.
static inline uint64_t encode(int64_t q, int bits, Encoding e) {
    const uint64_t mask = (uint64_t(1) << bits) - 1;
    const uint64_t mag = q < 0 ? uint64_t(-q) : uint64_t(q);
    switch (e) {
        case Encoding::Differential: return mag;
        case Encoding::SignMagnitude: return mag | (uint64_t(q < 0) << (bits - 1));
        case Encoding::TwosComplement: return uint64_t(q) & mask;
        case Encoding::Offset: default: return uint64_t(q + (int64_t(1) << (bits - 1))) & mask;
    }
}

// Inverse of encode for Sign/Twos/Offset; for Differential it takes the signed magnitude
// (positive-array code minus negative-array code) and is the identity.
static inline int64_t decode(uint64_t u, int bits, Encoding e) {
    const uint64_t half = uint64_t(1) << (bits - 1);
    switch (e) {
        case Encoding::Differential: return int64_t(u);
        case Encoding::SignMagnitude: {
            const int64_t mag = int64_t(u & (half - 1));
            return (u & half) ? -mag : mag;
        }
        case Encoding::TwosComplement: return (u & half) ? int64_t(u) - int64_t(half << 1) : int64_t(u);
        case Encoding::Offset: default: return int64_t(u) - int64_t(half);
    }
}

static inline int popcount64(uint64_t v) {
#ifdef __POPCNT__
    return __builtin_popcountll(v);
#else  // no POPCNT in this file's target: inline SWAR (GCC would call libgcc's __popcountdi2 instead)
    v -= (v >> 1) & 0x5555555555555555ull;
    v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return int((v * 0x0101010101010101ull) >> 56);
#endif
}

// Hamming weight (ON cells) of an integer level q.
static inline int hw_level(int64_t q, int bits, Encoding e) { return popcount64(encode(q, bits, e)); }

// Flat index of the first value outside the symmetric range for `bits`, or -1.
template <class T>
static inline int64_t first_out_of_range(const T* q, int64_t n, int bits) {
    const int64_t hi = level_max(bits), lo = -hi;
    for (int64_t i = 0; i < n; ++i)
        if (int64_t(q[i]) < lo || int64_t(q[i]) > hi) return i;
    return -1;
}

}  // namespace hamq
