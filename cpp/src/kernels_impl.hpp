// The hot kernels, written once and compiled once per instruction-set tier: isa_baseline.cpp,
// isa_avx2.cpp and isa_avx512.cpp define HAMQ_ISA_NS and include this file with their own compiler
// flags. Everything lives in an anonymous namespace (internal linkage), so no symbol compiled for a
// wider ISA can be picked up by the linker for a narrower one; only make_table() is exported.
//
// Loops are written so the compiler vectorises them (fixed lane counts, no data-dependent
// branches); the AVX-512 BITALG int8 path for Hamming weights is written with intrinsics because
// it must run at memory bandwidth.
#include <cstdint>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#include "hamqcore/encoding.hpp"
#include "cost_table.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

#if defined(__AVX__)
#include <immintrin.h>
#endif
#if defined(__AVX512BW__) && defined(__AVX512BITALG__) && defined(__AVX512VPOPCNTDQ__)
#define HAMQ_HAVE_AVX512_INTRIN 1
#endif

#ifndef HAMQ_ISA_NS
#error "define HAMQ_ISA_NS before including kernels_impl.hpp"
#endif

namespace hamq {
namespace HAMQ_ISA_NS {
namespace {

#include "kernels_hamming.hpp"
#include "kernels_relaxed.hpp"
#include "kernels_crossbar.hpp"
#include "kernels_rounding.hpp"

void transpose_bits(const uint16_t* codes, int nbits, uint64_t* planes) {
#ifdef HAMQ_HAVE_AVX512_INTRIN
    const __m512i lo = _mm512_loadu_si512(codes), hi = _mm512_loadu_si512(codes + 32);
    for (int b = 0; b < nbits; ++b) {
        const __m512i m = _mm512_set1_epi16(short(1 << b));
        planes[b] = uint64_t(_mm512_test_epi16_mask(lo, m)) | (uint64_t(_mm512_test_epi16_mask(hi, m)) << 32);
    }
#elif defined(__AVX2__)
    // bit b of each code shifted to its sign bit, packed to bytes with signed saturation (the sign
    // survives), the 128-bit lanes' interleave undone, and the byte signs read: 32 codes per mask
    __m256i c[4];
    for (int i = 0; i < 4; ++i) c[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 16 * i));
    for (int b = 0; b < nbits; ++b) {
        const __m128i sh = _mm_cvtsi32_si128(15 - b);
        uint64_t word = 0;
        for (int h = 0; h < 2; ++h) {
            const __m256i packed = _mm256_packs_epi16(_mm256_sll_epi16(c[2 * h], sh), _mm256_sll_epi16(c[2 * h + 1], sh));
            word |= uint64_t(uint32_t(_mm256_movemask_epi8(_mm256_permute4x64_epi64(packed, 0xD8)))) << (32 * h);
        }
        planes[b] = word;
    }
#else
    for (int b = 0; b < nbits; ++b) {
        uint64_t word = 0;
        for (int r = 0; r < 64; ++r) word |= uint64_t((codes[r] >> b) & 1u) << r;
        planes[b] = word;
    }
#endif
}

void digit_planes(const int32_t* q, const DigitRule* rules, int n_rules, int cb, uint64_t* planes) {
#ifdef HAMQ_HAVE_AVX512_INTRIN
    __m512i v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_si512(q + 16 * i);
    for (int k = 0; k < n_rules; ++k) {
        const DigitRule& r = rules[k];
        __m512i u[4];
        for (int i = 0; i < 4; ++i) {  // digit_of's u, lane by lane
            __m512i t = r.sign < 0 ? _mm512_sub_epi32(_mm512_setzero_si512(), v[i]) : v[i];
            t = _mm512_max_epi32(t, _mm512_set1_epi32(r.floor));
            t = _mm512_add_epi32(t, _mm512_set1_epi32(r.add));
            u[i] = _mm512_and_si512(t, _mm512_set1_epi32(int32_t(r.keep)));
        }
        for (int j = 0; j < cb; ++j) {  // bit j of the digit: bit shift + j of u where the mask keeps it
            uint64_t word = 0;
            if ((r.mask >> j) & 1u) {
                const __m512i m = _mm512_set1_epi32(int32_t(uint32_t(1) << (r.shift + j)));
                for (int i = 0; i < 4; ++i) word |= uint64_t(_mm512_test_epi32_mask(u[i], m)) << (16 * i);
            }
            planes[k * cb + j] = word;
        }
    }
#elif defined(__AVX2__)
    __m256i v[8];
    for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 8 * i));
    for (int k = 0; k < n_rules; ++k) {
        const DigitRule& r = rules[k];
        __m256i u[8];
        for (int i = 0; i < 8; ++i) {  // digit_of's u, lane by lane
            __m256i t = r.sign < 0 ? _mm256_sub_epi32(_mm256_setzero_si256(), v[i]) : v[i];
            t = _mm256_max_epi32(t, _mm256_set1_epi32(r.floor));
            t = _mm256_add_epi32(t, _mm256_set1_epi32(r.add));
            u[i] = _mm256_and_si256(t, _mm256_set1_epi32(int32_t(r.keep)));
        }
        for (int j = 0; j < cb; ++j) {  // bit shift + j of u (where the mask keeps it) moved to the sign bit
            uint64_t word = 0;
            if ((r.mask >> j) & 1u) {
                const __m128i sh = _mm_cvtsi32_si128(31 - (r.shift + j));
                for (int i = 0; i < 8; ++i)
                    word |= uint64_t(uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_sll_epi32(u[i], sh))))) << (8 * i);
            }
            planes[k * cb + j] = word;
        }
    }
#else
    uint32_t digit[64];
    for (int k = 0; k < n_rules; ++k) {
        for (int i = 0; i < 64; ++i) digit[i] = digit_of(q[i], rules[k]);
        for (int j = 0; j < cb; ++j) {
            uint64_t word = 0;
            for (int i = 0; i < 64; ++i) word |= uint64_t((digit[i] >> j) & 1u) << i;
            planes[k * cb + j] = word;
        }
    }
#endif
}

}  // namespace

const KernelTable* make_table(const char* name) {
    static const KernelTable table = {name,        hw_map,      hw_total,    hw_hist,
                                      relaxed_f32, relaxed_f64,
                                      penalty_rows_f32, penalty_rows_f64, xbar_popcount,
                                      xbar_deviation, digit_planes, transpose_bits, factor_upper, round_rows,
                                      quantize_rows_impl<float>, quantize_rows_impl<double>,
                                      fake_quantize_impl<float>, fake_quantize_impl<double>,
                                      fake_quantize_backward_impl<float>, fake_quantize_backward_impl<double>,
                                      abs_max_impl<float>, abs_max_impl<double>};
    return &table;
}

}  // namespace HAMQ_ISA_NS
}  // namespace hamq
