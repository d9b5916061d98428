// The kernels compiled for the "avx512" tier (compiler flags for this file are set in CMakeLists.txt).
#define HAMQ_ISA_NS isa_avx512
#include "kernels_impl.hpp"

namespace hamq {
const KernelTable* kernels_avx512() { return isa_avx512::make_table("avx512"); }
}  // namespace hamq
