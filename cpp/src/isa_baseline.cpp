// The kernels compiled for the "baseline" tier (compiler flags for this file are set in CMakeLists.txt).
#define HAMQ_ISA_NS isa_baseline
#include "kernels_impl.hpp"

namespace hamq {
const KernelTable* kernels_baseline() { return isa_baseline::make_table("baseline"); }
}  // namespace hamq
