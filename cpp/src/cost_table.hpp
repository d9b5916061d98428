// Internal: the level-cost table of per-bit costs (relaxed.hpp's BitCost), shared by the fused penalty
// and the HW-aware rounding. `static inline` for the same reason as encoding.hpp: it is compiled into
// every ISA tier.
#pragma once
#include <cstdint>
#include <vector>

#include "hamqcore/encoding.hpp"

namespace hamq {

// table[k + hi] = sum_p cost[p] bit_p(encode(k)) for every level k, from the per-code sums (code c
// costs code(c & (c - 1)) + cost[lowest set bit of c]): O(2^bits), summed in double. cost == nullptr:
// the HW of each level.
template <class F>
static inline void build_cost_table(const double* cost, int bits, Encoding e, std::vector<double>& code_cost,
                                    F* table) {
    const int64_t codes = int64_t(1) << bits, hi = level_max(bits);
    code_cost.assign(size_t(codes), 0.0);
    for (int64_t c = 1; c < codes; ++c)
        code_cost[size_t(c)] = code_cost[size_t(c & (c - 1))] + (cost ? cost[__builtin_ctzll(uint64_t(c))] : 1.0);
    for (int64_t k = -hi; k <= hi; ++k) table[k + hi] = F(code_cost[size_t(encode(k, bits, e))]);
}

}  // namespace hamq
