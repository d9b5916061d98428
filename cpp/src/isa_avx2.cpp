// The kernels compiled for the "avx2" tier (compiler flags for this file are set in CMakeLists.txt).
#define HAMQ_ISA_NS isa_avx2
#include "kernels_impl.hpp"

namespace hamq {
const KernelTable* kernels_avx2() { return isa_avx2::make_table("avx2"); }
}  // namespace hamq
