// Picks the widest kernel tier this CPU supports (overridable with HAMQCORE_ISA or set_isa) and
// forwards the public kernel API to it.
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>
#include "hamqcore/dispatch.hpp"
#include "hamqcore/hamming.hpp"
#include "hamqcore/parallel.hpp"
#include "hamqcore/relaxed.hpp"
#include "kernel_table.hpp"

namespace hamq {

#if !defined(HAMQ_BUILD_AVX2)
const KernelTable* kernels_avx2() { return nullptr; }
#endif
#if !defined(HAMQ_BUILD_AVX512)
const KernelTable* kernels_avx512() { return nullptr; }
#endif

namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi2");
#else
    return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bitalg");
#else
    return false;
#endif
}

// Best first.
std::vector<const KernelTable*> usable_tables() {
    std::vector<const KernelTable*> out;
    if (kernels_avx512() && cpu_has_avx512()) out.push_back(kernels_avx512());
    if (kernels_avx2() && cpu_has_avx2()) out.push_back(kernels_avx2());
    out.push_back(kernels_baseline());
    return out;
}

const KernelTable* find_table(const std::string& name) {
    for (const KernelTable* t : usable_tables())
        if (name == t->name) return t;
    return nullptr;
}

const KernelTable* initial_table() {
    if (const char* env = std::getenv("HAMQCORE_ISA")) {
        if (const KernelTable* t = find_table(env)) return t;
    }
    return usable_tables().front();
}

std::atomic<const KernelTable*>& active_slot() {
    static std::atomic<const KernelTable*> slot{initial_table()};
    return slot;
}

}  // namespace

const KernelTable& active_kernels() { return *active_slot().load(std::memory_order_acquire); }

std::string active_isa() { return active_kernels().name; }

std::vector<std::string> available_isas() {
    std::vector<std::string> names;
    for (const KernelTable* t : usable_tables()) names.emplace_back(t->name);
    return names;
}

bool set_isa(const std::string& name) {
    const KernelTable* t = find_table(name);
    if (!t) return false;
    active_slot().store(t, std::memory_order_release);
    return true;
}

int64_t hamming_weight(IntType t, const void* q, int64_t n, int bits, Encoding e, uint8_t* out,
                       int n_threads) {
    return active_kernels().hw_map(t, q, n, bits, e, out, n_threads);
}
int64_t total_hamming_weight(IntType t, const void* q, int64_t n, int bits, Encoding e,
                             uint64_t* total, int n_threads) {
    return active_kernels().hw_total(t, q, n, bits, e, total, n_threads);
}
int64_t hw_histogram(IntType t, const void* q, int64_t n, int bits, Encoding e, int64_t* hist,
                     int n_threads) {
    return active_kernels().hw_hist(t, q, n, bits, e, hist, n_threads);
}
int64_t relaxed_hw(const float* x, int64_t n, int bits, Encoding e, Relaxation r, float* value,
                   float* derivative, int n_threads) {
    return active_kernels().relaxed_f32(x, n, bits, e, r, value, derivative, n_threads);
}
int64_t relaxed_hw(const double* x, int64_t n, int bits, Encoding e, Relaxation r, double* value,
                   double* derivative, int n_threads) {
    return active_kernels().relaxed_f64(x, n, bits, e, r, value, derivative, n_threads);
}
int64_t relaxed_hw_penalty(const float* x, int64_t n, int bits, Encoding e, Relaxation r,
                           double value_scale, double* value, float* grad, int n_threads) {
    float one = 1.0f;  // the row kernel with one row and scale 1: x / 1 is exact
    return active_kernels().penalty_rows_f32(x, 1, n, &one, false, bits, e, r, value_scale, value, grad,
                                             nullptr, n_threads, BitCost{});
}
int64_t relaxed_hw_penalty(const double* x, int64_t n, int bits, Encoding e, Relaxation r,
                           double value_scale, double* value, double* grad, int n_threads) {
    double one = 1.0;
    return active_kernels().penalty_rows_f64(x, 1, n, &one, false, bits, e, r, value_scale, value, grad,
                                             nullptr, n_threads, BitCost{});
}

int64_t relaxed_hw_penalty_rows(const float* w, int64_t rows, int64_t cols, float* scale,
                                bool scale_from_max, int bits, Encoding e, Relaxation r,
                                double value_scale, double* value, float* grad_w, float* grad_scale,
                                int n_threads, BitCost bit_cost) {
    return active_kernels().penalty_rows_f32(w, rows, cols, scale, scale_from_max, bits, e, r,
                                             value_scale, value, grad_w, grad_scale, n_threads, bit_cost);
}
int64_t relaxed_hw_penalty_rows(const double* w, int64_t rows, int64_t cols, double* scale,
                                bool scale_from_max, int bits, Encoding e, Relaxation r,
                                double value_scale, double* value, double* grad_w,
                                double* grad_scale, int n_threads, BitCost bit_cost) {
    return active_kernels().penalty_rows_f64(w, rows, cols, scale, scale_from_max, bits, e, r,
                                             value_scale, value, grad_w, grad_scale, n_threads, bit_cost);
}

}  // namespace hamq
