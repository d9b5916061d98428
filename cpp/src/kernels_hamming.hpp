// Included by kernels_impl.hpp only, inside its per-ISA anonymous namespace (compiled once per tier).
// Integer Hamming weights: per element, total and histogram, every encoding and integer type.
#pragma once
// ---------------------------------------------------------------------------------------------
// Integer Hamming weights
// ---------------------------------------------------------------------------------------------

template <class T>
using Wide = std::conditional_t<(sizeof(T) <= 4), int32_t, int64_t>;
template <class T>
using UWide = std::conditional_t<(sizeof(T) <= 4), uint32_t, uint64_t>;

// Each byte's count of 1 bits, left in that byte: the first three steps of the bit-parallel count
// (Warren, "Hacker's Delight", 2nd ed., fig. 5-2). Shifts, ands and adds, which vectorise on any tier.
inline uint32_t byte_counts(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    return (x + (x >> 4)) & 0x0F0F0F0Fu;
}

#ifdef HAMQ_HAVE_AVX512_INTRIN
// VPOPCNTD/Q: the builtin vectorises.
constexpr bool kVectorPopcount = true;
template <class U>
inline unsigned popc(U v) {
    if constexpr (sizeof(U) <= 4) return unsigned(__builtin_popcount(uint32_t(v)));
    else return unsigned(__builtin_popcountll(uint64_t(v)));
}
#else
// No vector popcount on this tier, and a builtin popcount keeps the loops around it scalar: the
// bit-parallel count (byte_counts, then the bytes' sum), which vectorises on any SIMD width. Exact:
// the same count as the builtin for every input.
constexpr bool kVectorPopcount = false;
template <class U>
inline unsigned popc(U v) {
    if constexpr (sizeof(U) <= 4) {
        uint32_t x = byte_counts(uint32_t(v));
        x = x + (x >> 8);
        x = x + (x >> 16);
        return unsigned(x & 0x3Fu);
    } else {
        uint64_t x = uint64_t(v);
        x = x - ((x >> 1) & 0x5555555555555555ull);
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
        x = x + (x >> 8);
        x = x + (x >> 16);
        x = x + (x >> 32);
        return unsigned(x & 0x7Full);
    }
}
#endif

// The stored bits of one weight whose 1s are ON cells, encoding fixed at compile time so the loops
// vectorise; sign-magnitude's sign cell is not among them (sign_cell). Every code is below 2^bits.
template <class T, int E>
inline UWide<T> code_bits(T q, UWide<T> mask, UWide<T> half) {
    using S = Wide<T>;
    using U = UWide<T>;
    const S s = S(q);
    if constexpr (E == int(Encoding::Differential) || E == int(Encoding::SignMagnitude))
        return s < 0 ? U(0) - U(s) : U(s);
    else if constexpr (E == int(Encoding::TwosComplement)) return U(s) & mask;
    else return U(U(s) + half) & mask;
}

// 1 for sign-magnitude's sign cell of a negative weight, else 0.
template <class T, int E>
inline unsigned sign_cell(T q) {
    if constexpr (E == int(Encoding::SignMagnitude)) return unsigned(Wide<T>(q) < 0);
    else return 0u;
}

// ON cells of one weight.
template <class T, int E>
inline unsigned hw_elem(T q, UWide<T> mask, UWide<T> half) {
    return popc(code_bits<T, E>(q, mask, half)) + sign_cell<T, E>(q);
}

// After a pass that tracked min/max: index of the first out-of-range value, or -1.
template <class T>
int64_t first_out_of_range(const T* q, int64_t n, int bits, int64_t mn, int64_t mx) {
    const int64_t hi = level_max(bits);
    if (mn >= -hi && mx <= hi) return -1;
    return hamq::first_out_of_range(q, n, bits);
}

enum class HwOp { Map, Total, Hist };

// One generic pass: range check fused with the per-element HW, consumed as a map, a sum or a
// histogram. Integer reductions are exact, so the result is independent of the thread count.
template <class T, int E, HwOp OP>
int64_t hw_pass(const T* q, int64_t n, int bits, uint8_t* out, uint64_t* total, int64_t* hist,
                int n_threads) {
    using S = Wide<T>;
    using U = UWide<T>;
    const U mask = U((uint64_t(1) << bits) - 1);
    const U half = U(uint64_t(1) << (bits - 1));
    S mn = 0, mx = 0;
    uint64_t sum = 0;
    const int nt = threads_for(n, n_threads);
    if constexpr (OP == HwOp::Hist) {
        int64_t h[kMaxBits + 2] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx)
        {
            // slot kMaxBits + 1 takes every value whose popcount exceeds any valid HW (an out-of-range
            // int32/int64 can have up to 64 one-bits): counted safely, then reported by the range check
            int64_t local[kMaxBits + 2] = {0};
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; ++i) {
                const S s = S(q[i]);
                mn = s < mn ? s : mn;
                mx = s > mx ? s : mx;
                const unsigned hw = hw_elem<T, E>(q[i], mask, half);
                local[hw > unsigned(kMaxBits) ? kMaxBits + 1 : hw] += 1;
            }
#pragma omp critical
            for (int b = 0; b <= kMaxBits + 1; ++b) h[b] += local[b];
        }
        for (int b = 0; b <= bits; ++b) hist[b] = h[b];
    } else {
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(min : mn) reduction(max : mx) reduction(+ : sum)
        for (int64_t i = 0; i < n; ++i) {
            const S s = S(q[i]);
            mn = s < mn ? s : mn;
            mx = s > mx ? s : mx;
            const unsigned h = hw_elem<T, E>(q[i], mask, half);
            if constexpr (OP == HwOp::Map) out[i] = uint8_t(h);
            else sum += h;
        }
        if constexpr (OP == HwOp::Total) *total = sum;
    }
    return first_out_of_range(q, n, bits, int64_t(mn), int64_t(mx));
}

#ifdef HAMQ_HAVE_AVX512_INTRIN
// int8 weights with bits <= 8: 64 weights per instruction with VPOPCNTB; the range check is a
// running byte min/max. Runs at memory bandwidth.
template <int E, HwOp OP>
int64_t hw_pass_i8_simd(const int8_t* q, int64_t n, int bits, uint8_t* out, uint64_t* total,
                        int64_t* hist, int n_threads) {
    const int64_t nblk = (n + 63) / 64;
    const int nt = threads_for(n, n_threads);
    int mn = 0, mx = 0;
    uint64_t sum = 0;
    int64_t h[kMaxBits + 1] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx) reduction(+ : sum)
    {
        const __m512i vmask = _mm512_set1_epi8(char((1u << bits) - 1));
        const __m512i vhalf = _mm512_set1_epi8(char(1u << (bits - 1)));
        const __m512i ones = _mm512_set1_epi8(1);
        const __m512i zero = _mm512_setzero_si512();
        __m512i vmin = zero, vmax = zero, vsum = zero;
        int64_t local[kMaxBits + 1] = {0};
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; ++b) {
            const int64_t i = b * 64;
            const __mmask64 m = (n - i >= 64) ? ~__mmask64(0) : ((__mmask64(1) << (n - i)) - 1);
            const __m512i v = _mm512_maskz_loadu_epi8(m, q + i);
            vmin = _mm512_min_epi8(vmin, v);
            vmax = _mm512_max_epi8(vmax, v);
            __m512i pc;
            if constexpr (E == int(Encoding::Differential)) {
                pc = _mm512_popcnt_epi8(_mm512_abs_epi8(v));
            } else if constexpr (E == int(Encoding::SignMagnitude)) {
                pc = _mm512_popcnt_epi8(_mm512_abs_epi8(v));
                pc = _mm512_mask_add_epi8(pc, _mm512_movepi8_mask(v), pc, ones);
            } else if constexpr (E == int(Encoding::TwosComplement)) {
                pc = _mm512_popcnt_epi8(_mm512_and_si512(v, vmask));
            } else {
                pc = _mm512_popcnt_epi8(_mm512_and_si512(_mm512_add_epi8(v, vhalf), vmask));
            }
            pc = _mm512_maskz_mov_epi8(m, pc);  // padding lanes contribute nothing
            if constexpr (OP == HwOp::Map) {
                _mm512_mask_storeu_epi8(out + i, m, pc);
            } else if constexpr (OP == HwOp::Total) {
                vsum = _mm512_add_epi64(vsum, _mm512_sad_epu8(pc, zero));
            } else {
                for (int k = 0; k <= bits; ++k)
                    local[k] += __builtin_popcountll(
                        _mm512_mask_cmpeq_epi8_mask(m, pc, _mm512_set1_epi8(char(k))));
            }
        }
        alignas(64) int8_t lo[64], hi[64];
        _mm512_store_si512(lo, vmin);
        _mm512_store_si512(hi, vmax);
        for (int k = 0; k < 64; ++k) {
            mn = lo[k] < mn ? lo[k] : mn;
            mx = hi[k] > mx ? hi[k] : mx;
        }
        sum += uint64_t(_mm512_reduce_add_epi64(vsum));
        if constexpr (OP == HwOp::Hist) {
#pragma omp critical
            for (int k = 0; k <= bits; ++k) h[k] += local[k];
        }
    }
    if constexpr (OP == HwOp::Total) *total = sum;
    if constexpr (OP == HwOp::Hist)
        for (int k = 0; k <= bits; ++k) hist[k] = h[k];
    return first_out_of_range(q, n, bits, mn, mx);
}
#endif

#if !defined(HAMQ_HAVE_AVX512_INTRIN) && defined(__AVX2__)
// int8 weights with bits <= 8 on AVX2: 32 weights per step, each byte's count from two 16-entry
// nibble tables (VPSHUFB; Mula, Kurz and Lemire, "Faster population counts using AVX2
// instructions", Comput. J. 2018), the range check a running byte min/max; the last n mod 32
// weights by the generic element rule (hw_elem). The same counts as hw_pass.
template <int E, HwOp OP>
int64_t hw_pass_i8_simd(const int8_t* q, int64_t n, int bits, uint8_t* out, uint64_t* total, int64_t* hist,
                        int n_threads) {
    const int64_t nblk = n / 32;
    const int nt = threads_for(n, n_threads);
    int mn = 0, mx = 0;
    uint64_t sum = 0;
    int64_t h[kMaxBits + 1] = {0};
#pragma omp parallel num_threads(nt) reduction(min : mn) reduction(max : mx) reduction(+ : sum)
    {
        const __m256i vmask = _mm256_set1_epi8(char((1u << bits) - 1));
        const __m256i vhalf = _mm256_set1_epi8(char(1u << (bits - 1)));
        const __m256i low = _mm256_set1_epi8(0x0f);
        const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                             0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
        const __m256i zero = _mm256_setzero_si256();
        __m256i vmin = zero, vmax = zero, vsum = zero;
        int64_t local[kMaxBits + 1] = {0};
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; ++b) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * 32));
            vmin = _mm256_min_epi8(vmin, v);
            vmax = _mm256_max_epi8(vmax, v);
            __m256i c;  // the bits counted: the magnitude, or the code under the mask
            if constexpr (E == int(Encoding::Differential) || E == int(Encoding::SignMagnitude))
                c = _mm256_abs_epi8(v);
            else if constexpr (E == int(Encoding::TwosComplement))
                c = _mm256_and_si256(v, vmask);
            else
                c = _mm256_and_si256(_mm256_add_epi8(v, vhalf), vmask);
            __m256i pc = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(c, low)),
                                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(c, 4), low)));
            if constexpr (E == int(Encoding::SignMagnitude))
                pc = _mm256_sub_epi8(pc, _mm256_cmpgt_epi8(zero, v));  // + 1 for the sign cell (-1 where v < 0)
            if constexpr (OP == HwOp::Map) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32), pc);
            } else if constexpr (OP == HwOp::Total) {
                vsum = _mm256_add_epi64(vsum, _mm256_sad_epu8(pc, zero));
            } else {
                for (int k = 0; k <= bits; ++k)
                    local[k] += __builtin_popcount(
                        uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(pc, _mm256_set1_epi8(char(k))))));
            }
        }
        alignas(32) int8_t lo[32], hi[32];
        alignas(32) uint64_t s4[4];
        _mm256_store_si256(reinterpret_cast<__m256i*>(lo), vmin);
        _mm256_store_si256(reinterpret_cast<__m256i*>(hi), vmax);
        _mm256_store_si256(reinterpret_cast<__m256i*>(s4), vsum);
        for (int k = 0; k < 32; ++k) {
            mn = lo[k] < mn ? lo[k] : mn;
            mx = hi[k] > mx ? hi[k] : mx;
        }
        sum += s4[0] + s4[1] + s4[2] + s4[3];
        if constexpr (OP == HwOp::Hist) {
#pragma omp critical
            for (int k = 0; k <= bits; ++k) h[k] += local[k];
        }
    }
    const uint32_t mask = (uint32_t(1) << bits) - 1, half = uint32_t(1) << (bits - 1);
    for (int64_t i = nblk * 32; i < n; ++i) {  // the tail
        mn = q[i] < mn ? q[i] : mn;
        mx = q[i] > mx ? q[i] : mx;
        const unsigned hw = hw_elem<int8_t, E>(q[i], mask, half);
        if constexpr (OP == HwOp::Map) out[i] = uint8_t(hw);
        else if constexpr (OP == HwOp::Total) sum += hw;
        else if (hw <= unsigned(bits)) h[hw] += 1;
    }
    if constexpr (OP == HwOp::Total) *total = sum;
    if constexpr (OP == HwOp::Hist)
        for (int k = 0; k <= bits; ++k) hist[k] = h[k];
    return first_out_of_range(q, n, bits, mn, mx);
}
#endif

template <HwOp OP, class T>
int64_t hw_dispatch_enc(const T* q, int64_t n, int bits, Encoding e, uint8_t* out, uint64_t* total,
                        int64_t* hist, int nt) {
#if defined(HAMQ_HAVE_AVX512_INTRIN) || defined(__AVX2__)
    if constexpr (std::is_same_v<T, int8_t>) {  // this tier's byte-wise pass (AVX-512 or AVX2)
        if (bits <= 8) {
            switch (e) {
                case Encoding::Differential: return hw_pass_i8_simd<0, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::SignMagnitude: return hw_pass_i8_simd<1, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::TwosComplement: return hw_pass_i8_simd<2, OP>(q, n, bits, out, total, hist, nt);
                case Encoding::Offset: return hw_pass_i8_simd<3, OP>(q, n, bits, out, total, hist, nt);
            }
        }
    }
#endif
    switch (e) {
        case Encoding::Differential: return hw_pass<T, 0, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::SignMagnitude: return hw_pass<T, 1, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::TwosComplement: return hw_pass<T, 2, OP>(q, n, bits, out, total, hist, nt);
        case Encoding::Offset: default: return hw_pass<T, 3, OP>(q, n, bits, out, total, hist, nt);
    }
}

template <HwOp OP>
int64_t hw_dispatch(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out,
                    uint64_t* total, int64_t* hist, int nt) {
    switch (t) {
        case IntType::I8: return hw_dispatch_enc<OP>(static_cast<const int8_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I16: return hw_dispatch_enc<OP>(static_cast<const int16_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I32: return hw_dispatch_enc<OP>(static_cast<const int32_t*>(q), n, bits, e, out, total, hist, nt);
        case IntType::I64: default: return hw_dispatch_enc<OP>(static_cast<const int64_t*>(q), n, bits, e, out, total, hist, nt);
    }
}

int64_t hw_map(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out, int nt) {
    return hw_dispatch<HwOp::Map>(t, q, n, bits, e, out, nullptr, nullptr, nt);
}
int64_t hw_total(IntType t, const void* q, int64_t n, int bits, Encoding e, uint64_t* total, int nt) {
    return hw_dispatch<HwOp::Total>(t, q, n, bits, e, nullptr, total, nullptr, nt);
}
int64_t hw_hist(IntType t, const void* q, int64_t n, int bits, Encoding e, int64_t* hist, int nt) {
    return hw_dispatch<HwOp::Hist>(t, q, n, bits, e, nullptr, nullptr, hist, nt);
}
