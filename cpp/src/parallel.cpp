#include "hamqcore/parallel.hpp"
#include <atomic>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace hamq {

namespace {
std::atomic<int> g_default_threads{0};  // 0: all hardware threads
std::atomic<bool> g_forked{false};      // this process is a fork() child of one that ran OpenMP

// libgomp's thread pool does not survive fork(): a child that starts a parallel region of more than
// one thread waits forever for threads it does not have. A child therefore runs every kernel on one
// thread (what PyTorch does for its own pool); multiprocessing and DataLoader workers then work.
void mark_forked() { g_forked.store(true); }

#if defined(__unix__) || defined(__APPLE__)
const int g_atfork_registered = pthread_atfork(nullptr, nullptr, mark_forked);
#endif
}  // namespace

bool forked_child() { return g_forked.load(); }

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
    if (g_forked.load()) return 1;
    const int n = g_default_threads.load();
    return n > 0 ? n : hardware_threads();
}

void set_default_threads(int n) { g_default_threads.store(n > 0 ? n : 0); }

int resolve_threads(int n) {
    if (g_forked.load()) return 1;
    if (n > 0) return n;
    const int r = hardware_threads() + 1 + n;  // -1 -> all, -2 -> all but one
    return r > 0 ? r : 1;
}

}  // namespace hamq
