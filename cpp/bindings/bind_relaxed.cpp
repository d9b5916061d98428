#include "common.hpp"

#include <sstream>
#include "hamqcore/relaxed.hpp"

#include <cmath>
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
py::tuple penalty_impl(const py::array& x, int bits, Encoding e, Relaxation r, bool mean, const py::object& out,
                       int nt) {
    py::array_t<F> grad = output_like<F>(x, out, false);
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

template <class F>
py::tuple scaled_impl(const py::array& w, const py::object& scale_obj, int bits, Encoding e,
                      Relaxation r, bool mean, int nt, double weight, const py::object& bit_cost_obj,
                      const py::object& out) {
    const std::vector<py::ssize_t> shape(w.shape(), w.shape() + w.ndim());
    const int64_t n = int64_t(w.size());
    const int64_t rows = shape.empty() ? 1 : int64_t(shape[0]);
    const int64_t cols = rows ? n / rows : 0;
    const bool from_max = scale_obj.is_none();
    std::vector<py::ssize_t> sshape{py::ssize_t(rows)};
    int64_t ns = rows;
    std::vector<F> per_row(size_t(rows), F(1));
    if (!from_max) {
        py::array sc = py::array::ensure(scale_obj);
        if (!sc || (sc.dtype().kind() != 'f' && sc.dtype().kind() != 'i'))
            throw py::type_error("scale must be None, a number or a float array");
        sshape.assign(sc.shape(), sc.shape() + sc.ndim());
        ns = int64_t(sc.size());
        if (ns != 1 && ns != rows)
            throw py::value_error("scale must hold 1 value or one per row of w (" + std::to_string(rows) +
                                  "), got " + std::to_string(ns));
        auto s = contiguous_as<F>(sc, "scale");
        for (int64_t i = 0; i < rows; ++i) per_row[size_t(i)] = s.data()[ns == rows ? i : 0];
    }
    bool cost_per_row = false;
    const std::vector<double> costs = bit_cost_arg(bit_cost_obj, bits, rows, &cost_per_row);
    const BitCost bc{costs.empty() ? nullptr : costs.data(), cost_per_row};
    py::array_t<F> grad = output_like<F>(w, out, false);
    std::vector<F> gs(size_t(rows), F(0));
    const double vs = weight * (mean ? (n ? 1.0 / double(n) : 0.0) : 1.0);
    double value = 0.0;
    const F* pw = static_cast<const F*>(w.data());
    F* pg = grad.mutable_data();
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = relaxed_hw_penalty_rows(pw, rows, cols, per_row.data(), from_max, bits, e, r, vs, &value,
                                      pg, gs.data(), nt, bc);
    }
    if (bad >= rows * cols) {
        // a non-finite weight is the usual cause of a non-finite step (one computed from it): name it
        for (int64_t k = 0; k < rows * cols; ++k)
            if (!std::isfinite(double(pw[k]))) throw_not_finite("w", w, k);
        const int64_t i = bad - rows * cols;
        std::ostringstream msg;
        msg << index_str("scale", sshape, ns == 1 ? 0 : i) << " = " << double(per_row[size_t(i)])
            << " must be finite and > 0, with a finite reciprocal";
        throw py::value_error(msg.str());
    }
    if (bad >= 0) throw_not_finite("w", w, bad);
    if (mean && n == 0) value = std::numeric_limits<double>::quiet_NaN();
    // With scale=None the third result is the step that was used; else d value / d scale.
    py::array_t<F> third(sshape);
    F* pt = third.mutable_data();
    if (from_max) {
        for (int64_t i = 0; i < rows; ++i) pt[i] = per_row[size_t(i)];
    } else if (ns == rows) {
        for (int64_t i = 0; i < rows; ++i) pt[i] = gs[size_t(i)];
    } else {
        double total = 0.0;
        for (int64_t i = 0; i < rows; ++i) total += double(gs[size_t(i)]);
        pt[0] = F(total);
    }
    return py::make_tuple(value, grad, third);
}

void check_reduction(const std::string& reduction) {
    if (reduction != "sum" && reduction != "mean")
        throw py::value_error("reduction must be one of 'sum', 'mean', got '" + reduction + "'");
}

}  // namespace

void bind_relaxed(py::module_& m) {
    m.attr("MAX_LEVEL_COST") = kMaxLevelCost;
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
           std::optional<int> n_threads, const py::object& out) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            check_reduction(reduction);
            const Relaxation r = parse_relaxation(relaxation);
            const int nt = threads_arg(n_threads);
            const py::array a = float_array(x, "x");
            const bool mean = reduction == "mean";
            return is_float32(a) ? penalty_impl<float>(a, bits, e, r, mean, out, nt)
                                 : penalty_impl<double>(a, bits, e, r, mean, out, nt);
        },
        "x"_a, "bits"_a, "encoding"_a = "differential", "reduction"_a = "sum",
        "relaxation"_a = "linear", "n_threads"_a = py::none(), "out"_a = py::none());

    m.def(
        "scaled_hw_penalty",
        [](const py::handle& w, const py::object& scale, int bits, const std::string& encoding,
           const std::string& reduction, const std::string& relaxation,
           std::optional<int> n_threads, double weight, const py::object& bit_cost, const py::object& out) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            check_reduction(reduction);
            const Relaxation r = parse_relaxation(relaxation);
            const int nt = threads_arg(n_threads);
            if (!std::isfinite(weight))
                throw py::value_error("weight must be finite, got " + std::to_string(weight));
            const py::array a = float_array(w, "w");
            const bool mean = reduction == "mean";
            return is_float32(a) ? scaled_impl<float>(a, scale, bits, e, r, mean, nt, weight, bit_cost, out)
                                 : scaled_impl<double>(a, scale, bits, e, r, mean, nt, weight, bit_cost, out);
        },
        "w"_a, "scale"_a, "bits"_a, "encoding"_a = "differential", "reduction"_a = "sum",
        "relaxation"_a = "linear", "n_threads"_a = py::none(), "weight"_a = 1.0, "bit_cost"_a = py::none(),
        "out"_a = py::none());
}

}  // namespace hamq::bind
