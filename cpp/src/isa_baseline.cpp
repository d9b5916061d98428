// The kernels compiled for the "baseline" tier (compiler flags for this file are set in CMakeLists.txt).
#define HAMQ_ISA_NS isa_baseline
#include "kernels_impl.hpp"

namespace hamq {
// In a HAMQCORE_NATIVE build this tier is compiled with -march=native: it says so, with the widest
// ISA the compiler enabled.
#if defined(HAMQ_NATIVE) && defined(__AVX512BW__) && defined(__AVX512VPOPCNTDQ__) && defined(__AVX512BITALG__)
#define HAMQ_TIER_NAME "native (avx512)"
#elif defined(HAMQ_NATIVE) && defined(__AVX2__)
#define HAMQ_TIER_NAME "native (avx2)"
#elif defined(HAMQ_NATIVE)
#define HAMQ_TIER_NAME "native"
#else
#define HAMQ_TIER_NAME "baseline"
#endif
const KernelTable* kernels_baseline() { return isa_baseline::make_table(HAMQ_TIER_NAME); }
}  // namespace hamq
