// Internal: the one rule for when a pass is worth threads, shared by every kernel. `static` for the
// same reason as encoding.hpp: this header is compiled into every ISA tier.
#pragma once
#include <cstdint>

#include "hamqcore/parallel.hpp"

namespace hamq {

// Below this much work (elements, weights x inputs, or multiply-adds) a pass runs on one thread:
// starting a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = int64_t(1) << 15;

// A fork() child always gets one thread (parallel.hpp forked_child).
static inline int threads_for(int64_t work, int n_threads) {
    return work >= kParallelGrain && !forked_child() ? n_threads : 1;
}

}  // namespace hamq
