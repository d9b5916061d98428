// hamqcore._core: the only Python-facing compiled module. Each area registers itself.
#include "common.hpp"

namespace hamq::bind {
void bind_threads(py::module_& m);
void bind_hamming(py::module_& m);
void bind_bitplanes(py::module_& m);
void bind_relaxed(py::module_& m);
void bind_crossbar(py::module_& m);
void bind_rounding(py::module_& m);
}  // namespace hamq::bind

PYBIND11_MODULE(_core, m) {
    m.doc() = "hamqcore's C++ kernels (Hamming weights, bit-planes, relaxed HW, crossbar energy, HW-aware rounding).";
    hamq::bind::bind_threads(m);
    hamq::bind::bind_hamming(m);
    hamq::bind::bind_bitplanes(m);
    hamq::bind::bind_relaxed(m);
    hamq::bind::bind_crossbar(m);
    hamq::bind::bind_rounding(m);
}
