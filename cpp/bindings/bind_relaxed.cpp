#include "common.hpp"
#include "hamqcore/relaxed.hpp"

#include <limits>

namespace hamq::bind {

namespace {

template <class F>
py::tuple relaxed_impl(const py::array& x, int bits, Encoding e, Relaxation r, int nt) {
    const std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
    py::array_t<F> value(shape), deriv(shape);
    const F* px = static_cast<const F*>(x.data());
    F* pv = value.mutable_data();
    F* pd = deriv.mutable_data();
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = relaxed_hw(px, int64_t(x.size()), bits, e, r, pv, pd, nt);
    }
    if (bad >= 0) throw_not_finite("x", x, bad);
    return py::make_tuple(value, deriv);
}

template <class F>
py::tuple penalty_impl(const py::array& x, int bits, Encoding e, Relaxation r, bool mean, int nt) {
    const std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
    py::array_t<F> grad(shape);
    const F* px = static_cast<const F*>(x.data());
    F* pg = grad.mutable_data();
    const int64_t n = int64_t(x.size());
    const double scale = mean ? (n ? 1.0 / double(n) : 0.0) : 1.0;
    double value = 0.0;
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = relaxed_hw_penalty(px, n, bits, e, r, scale, &value, pg, nt);
    }
    if (bad >= 0) throw_not_finite("x", x, bad);
    if (mean && n == 0) value = std::numeric_limits<double>::quiet_NaN();  // like torch's mean
    return py::make_tuple(value, grad);
}

}  // namespace

void bind_relaxed(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "relaxed_hw",
        [](const py::handle& x, int bits, const std::string& encoding,
           const std::string& relaxation, std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            const Relaxation r = parse_relaxation(relaxation);
            const int nt = threads_arg(n_threads);
            const py::array a = float_array(x, "x");
            return is_float32(a) ? relaxed_impl<float>(a, bits, e, r, nt)
                                 : relaxed_impl<double>(a, bits, e, r, nt);
        },
        "x"_a, "bits"_a, "encoding"_a = "differential", "relaxation"_a = "linear",
        "n_threads"_a = py::none());

    m.def(
        "relaxed_hw_penalty",
        [](const py::handle& x, int bits, const std::string& encoding,
           const std::string& reduction, const std::string& relaxation,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            if (reduction != "sum" && reduction != "mean")
                throw py::value_error("reduction must be one of 'sum', 'mean', got '" + reduction + "'");
            const Relaxation r = parse_relaxation(relaxation);
            const int nt = threads_arg(n_threads);
            const py::array a = float_array(x, "x");
            const bool mean = reduction == "mean";
            return is_float32(a) ? penalty_impl<float>(a, bits, e, r, mean, nt)
                                 : penalty_impl<double>(a, bits, e, r, mean, nt);
        },
        "x"_a, "bits"_a, "encoding"_a = "differential", "reduction"_a = "sum",
        "relaxation"_a = "linear", "n_threads"_a = py::none());
}

}  // namespace hamq::bind
