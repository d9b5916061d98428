#include "hamqcore/parallel.hpp"
#include <atomic>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace hamq {

namespace {
std::atomic<int> g_default_threads{0};  // 0: all hardware threads
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int hardware_threads() {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    const unsigned n = std::thread::hardware_concurrency();
    return n ? int(n) : 1;
#endif
}

int default_threads() {
    const int n = g_default_threads.load();
    return n > 0 ? n : hardware_threads();
}

void set_default_threads(int n) { g_default_threads.store(n > 0 ? n : 0); }

int resolve_threads(int n) {
    if (n > 0) return n;
    const int r = hardware_threads() + 1 + n;  // -1 -> all, -2 -> all but one
    return r > 0 ? r : 1;
}

}  // namespace hamq
