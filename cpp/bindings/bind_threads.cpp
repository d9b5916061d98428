#include "common.hpp"
#include "hamqcore/dispatch.hpp"
#include "hamqcore/parallel.hpp"

namespace hamq::bind {

void bind_threads(py::module_& m) {
    m.def("openmp_enabled", &openmp_enabled, "True when the kernels were built with OpenMP.");
    m.def("hardware_threads", &hardware_threads, "Processors available to this process.");
    m.def("get_num_threads", &default_threads, "Threads used when a kernel gets n_threads=None.");
    m.def("max_threads", [] { return kMaxThreadsPerProcessor * hardware_threads(); },
          "The most threads a call may ask for.");
    m.def(
        "set_num_threads",
        [](int n) { set_default_threads(threads_arg(n)); },
        py::arg("n"),
        "Set the threads used when n_threads=None (negative counts back from the maximum).");
    m.def("active_isa", &active_isa, "Instruction-set tier the kernels run on.");
    m.def("available_isas", &available_isas, "Tiers usable on this CPU and build, best first.");
    m.def(
        "set_isa",
        [](const std::string& name) {
            if (!set_isa(name)) {
                std::string avail;
                for (const auto& s : available_isas()) avail += (avail.empty() ? "'" : ", '") + s + "'";
                throw py::value_error("isa must be one of " + avail + " on this machine, got '" +
                                      name + "'");
            }
        },
        py::arg("name"), "Switch the kernel tier (for tests and benchmarks).");
}

}  // namespace hamq::bind
