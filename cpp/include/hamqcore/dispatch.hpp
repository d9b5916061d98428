// CPU-feature dispatch: the kernels are compiled once per instruction-set tier and the widest one this
// CPU supports runs (cpp/src/dispatch.cpp).
#pragma once
#include <string>
#include <vector>

namespace hamq {

// Kernel instruction-set tier in use ("avx512", "avx2", "baseline"; "native (...)" in a
// HAMQCORE_NATIVE build, named after the widest ISA the compiler enabled), the tiers this CPU and
// build support (best first), and a switch used by tests and benchmarks. set_isa returns false when
// the tier is not available. The environment variable HAMQCORE_ISA picks the tier at load time.
std::string active_isa();
std::vector<std::string> available_isas();
bool set_isa(const std::string& name);

}  // namespace hamq
