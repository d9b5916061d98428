// Thread-count policy and CPU-feature dispatch shared by all kernels.
#pragma once
#include <string>
#include <vector>

namespace hamq {

bool openmp_enabled();
int hardware_threads();              // processors available to this process
int default_threads();               // what n_threads=None means (set_default_threads, else all)
void set_default_threads(int n);     // n >= 1
// Maps a user request to a count >= 1: n > 0 as is, n < 0 counts back from hardware_threads()
// (-1 = all). Callers validate first: 0 and n < -hardware_threads() are errors.
int resolve_threads(int n);

// Kernel instruction-set tier in use ("avx512", "avx2", "baseline"), the tiers this CPU and build
// support (best first), and a switch used by tests and benchmarks. set_isa returns false when the
// tier is not available. The environment variable HAMQCORE_ISA picks the tier at load time.
std::string active_isa();
std::vector<std::string> available_isas();
bool set_isa(const std::string& name);

}  // namespace hamq
