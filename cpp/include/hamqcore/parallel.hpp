// Thread-count policy shared by all kernels (the instruction-set tiers: dispatch.hpp).
#pragma once
#include <string>
#include <vector>

namespace hamq {

// The most threads a call may ask for, per available processor: more only adds start-up cost, and
// tens of thousands exhaust the OpenMP runtime.
constexpr int kMaxThreadsPerProcessor = 4;

bool openmp_enabled();
// True in a fork() child: every kernel then runs on one thread (the OpenMP pool does not survive fork).
bool forked_child();
int hardware_threads();              // processors available to this process
int default_threads();               // what n_threads=None means (set_default_threads, else all)
void set_default_threads(int n);     // n >= 1
// Maps a user request to a count >= 1: n > 0 as is, n < 0 counts back from hardware_threads()
// (-1 = all). Callers validate first: 0 and n < -hardware_threads() are errors.
int resolve_threads(int n);

}  // namespace hamq
