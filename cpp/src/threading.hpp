// Internal: the one rule for when a pass is worth threads, shared by every kernel. `static` for the
// same reason as encoding.hpp: this header is compiled into every ISA tier.
#pragma once
#include <cstdint>

namespace hamq {

// Below this much work (elements, weights x inputs, or multiply-adds) a pass runs on one thread:
// starting a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = int64_t(1) << 15;

static inline int threads_for(int64_t work, int n_threads) { return work >= kParallelGrain ? n_threads : 1; }

}  // namespace hamq
