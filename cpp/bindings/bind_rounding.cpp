#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "hamqcore/rounding.hpp"

namespace hamq::bind {

namespace {

// A C-contiguous float64 copy-or-view of a float array with the given number of dimensions.
py::array_t<double, py::array::c_style | py::array::forcecast> f64(const py::handle& obj, const char* arg, int ndim) {
    const py::array a = float_array(obj, arg);
    if (a.ndim() != ndim)
        throw py::value_error(std::string(arg) + " must be a " + std::to_string(ndim) + "-D array, got shape " +
                              shape_str(a));
    return contiguous_as<double>(a, arg);
}

}  // namespace

// quantize_rows for one dtype: (q int16 rows x k, steps) of a C-contiguous 2-D array.
template <class T>
py::tuple quantize_rows_typed(const py::array& w_arr, int bits, const py::object& step_obj, int nt) {
    auto w = contiguous_as<T>(w_arr, "w");
    const int64_t rows = w.shape(0), k = w.shape(1);
    const T* pw = w.data();
    py::array_t<T, py::array::c_style | py::array::forcecast> step_in;
    if (!step_obj.is_none()) {
        const py::array s = float_array(step_obj, "step");
        if (s.ndim() != 1 || s.shape(0) != rows)
            throw py::value_error("step must hold one step per row of w (" + std::to_string(rows) + "), got shape " +
                                  shape_str(s));
        step_in = contiguous_as<T>(s, "step");
        for (int64_t r = 0; r < rows; ++r)
            if (!(step_in.data()[r] > 0) || !std::isfinite(step_in.data()[r]))
                throw py::value_error("step[" + std::to_string(r) + "] = " + std::to_string(double(step_in.data()[r])) +
                                      " must be finite and > 0");
    }
    py::array_t<int16_t> q({py::ssize_t(rows), py::ssize_t(k)});
    py::array_t<T> steps{py::ssize_t(rows)};
    int16_t* pq = q.mutable_data();
    T* ps = steps.mutable_data();
    const T* pin = step_obj.is_none() ? nullptr : step_in.data();
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = quantize_rows(pw, rows, k, bits, pin, ps, pq, nt);
    }
    if (bad >= 0)
        throw py::value_error(index_str("w", {py::ssize_t(rows), py::ssize_t(k)}, bad) + " = " +
                              std::to_string(double(pw[bad])) + " is not finite");
    return py::make_tuple(q, steps);
}

template <class T>
py::array fake_quantize_typed(const py::array& x_arr, double step, double lo, double hi, const py::object& out, int nt) {
    auto x = contiguous_as<T>(x_arr, "x");
    py::array_t<T> y = output_like<T>(x, out, true);
    const T* px = x.data();
    T* py_ = y.mutable_data();
    const int64_t n = int64_t(x.size());
    {
        py::gil_scoped_release release;
        fake_quantize(px, n, T(step), T(lo), T(hi), py_, nt);
    }
    return std::move(y);
}

template <class T>
py::array fake_quantize_backward_typed(const py::array& x_arr, const py::array& g_arr, double step, double lo,
                                       double hi, const py::object& out, int nt) {
    auto x = contiguous_as<T>(x_arr, "x");
    auto g = contiguous_as<T>(g_arr, "grad");
    py::array_t<T> gx = output_like<T>(x, out, true);
    const T *px = x.data(), *pg = g.data();
    T* pgx = gx.mutable_data();
    const int64_t n = int64_t(x.size());
    {
        py::gil_scoped_release release;
        fake_quantize_backward(px, pg, n, T(step), T(lo), T(hi), pgx, nt);
    }
    return std::move(gx);
}

void bind_rounding(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "fake_quantize",
        [](const py::handle& x_obj, double step, double lo, double hi, const py::object& out,
           std::optional<int> n_threads) {
            const int nt = threads_arg(n_threads);
            const py::array x = float_array(x_obj, "x");
            return is_float32(x) ? fake_quantize_typed<float>(x, step, lo, hi, out, nt)
                                 : fake_quantize_typed<double>(x, step, lo, hi, out, nt);
        },
        "x"_a, "step"_a, "lo"_a, "hi"_a, "out"_a = py::none(), "n_threads"_a = py::none(),
        "Fake quantization of x (float32 or float64, any shape) onto the grid step * {lo, ..., hi}: "
        "clamp(round_half_even(x / step), lo, hi) * step in x's dtype (NaN stays NaN), into out if given. "
        "step, lo and hi are hamqcore.kernels' to check (_checks.check_grid).");
    m.def(
        "fake_quantize_backward",
        [](const py::handle& x_obj, const py::handle& g_obj, double step, double lo, double hi,
           const py::object& out, std::optional<int> n_threads) {
            const int nt = threads_arg(n_threads);
            const py::array x = float_array(x_obj, "x");
            const py::array g = float_array(g_obj, "grad");
            if (g.dtype().itemsize() != x.dtype().itemsize() || g.ndim() != x.ndim() ||
                !std::equal(x.shape(), x.shape() + x.ndim(), g.shape()))
                throw py::value_error("grad must have x's shape " + shape_str(x) + " and dtype " +
                                      std::string(py::str(x.dtype())) + ", got " + shape_str(g) + " " +
                                      std::string(py::str(g.dtype())));
            return is_float32(x) ? fake_quantize_backward_typed<float>(x, g, step, lo, hi, out, nt)
                                 : fake_quantize_backward_typed<double>(x, g, step, lo, hi, out, nt);
        },
        "x"_a, "grad"_a, "step"_a, "lo"_a, "hi"_a, "out"_a = py::none(), "n_threads"_a = py::none(),
        "The straight-through gradient of fake_quantize: (grad * step) / step where lo <= "
        "round(x / step) <= hi, else 0 (what autograd computes through the forward's operations), into out if given.");
    m.def(
        "abs_max",
        [](const py::handle& x_obj, std::optional<int> n_threads) {
            const int nt = threads_arg(n_threads);
            const py::array x = float_array(x_obj, "x");
            const int64_t n = int64_t(x.size());
            if (is_float32(x)) {
                auto a = contiguous_as<float>(x, "x");
                const float* p = a.data();
                py::gil_scoped_release release;
                return double(abs_max(p, n, nt));
            }
            auto a = contiguous_as<double>(x, "x");
            const double* p = a.data();
            py::gil_scoped_release release;
            return abs_max(p, n, nt);
        },
        "x"_a, "n_threads"_a = py::none(),
        "max |x| over a float32 or float64 array in one pass (NaN when one element is NaN, 0 when empty).");
    m.def(
        "quantize_rows",
        [](const py::handle& w_obj, int bits, const py::object& step, std::optional<int> n_threads) {
            check_bits(bits, "bits");
            const int nt = threads_arg(n_threads);
            const py::array w = float_array(w_obj, "w");
            if (w.ndim() != 2)
                throw py::value_error("w must be a 2-D array (rows x k), got shape " + shape_str(w));
            return is_float32(w) ? quantize_rows_typed<float>(w, bits, step, nt)
                                 : quantize_rows_typed<double>(w, bits, step, nt);
        },
        "w"_a, "bits"_a, "step"_a = py::none(), "n_threads"_a = py::none(),
        "Weights (rows x k, float32 or float64) onto the symmetric integer grid of `bits` bits: "
        "(q int16, step per row), q = clamp(round_half_even(w / step), -qmax, qmax); step: each row's "
        "step, or None for the max step max|w_row| / qmax.");
    m.def(
        "hw_aware_round",
        [](const py::handle& w_obj, const py::handle& h_obj, const py::handle& scale_obj,
           const py::handle& row_weight_obj, int bits,
           const std::string& encoding, double lam, int radius, double damp, const py::object& bit_cost,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            if (!std::isfinite(lam) || lam < 0)
                throw py::value_error("lam must be a finite number >= 0, got " + std::to_string(lam));
            if (radius < 0 || radius > 1024)
                throw py::value_error("radius must be an integer in 0..1024, got " + std::to_string(radius));
            if (!std::isfinite(damp) || damp < 0)
                throw py::value_error("damp must be a finite number >= 0, got " + std::to_string(damp));
            const int nt = threads_arg(n_threads);
            auto w = f64(w_obj, "w", 2);
            auto h = f64(h_obj, "h", 2);
            auto scale = f64(scale_obj, "scale", 1);
            auto row_weight = f64(row_weight_obj, "row_weight", 1);
            const int64_t rows = w.shape(0), k = w.shape(1);
            if (h.shape(0) != k || h.shape(1) != k)
                throw py::value_error("h must be K x K for w with K = " + std::to_string(k) + " columns, got shape " +
                                      shape_str(h));
            if (scale.shape(0) != rows)
                throw py::value_error("scale must hold one step per row of w (" + std::to_string(rows) +
                                      "), got shape " + shape_str(scale));
            if (row_weight.shape(0) != rows)
                throw py::value_error("row_weight must hold one value per row of w (" + std::to_string(rows) +
                                      "), got shape " + shape_str(row_weight));
            const std::vector<double> costs = bit_cost_arg(bit_cost, bits, rows);
            py::array_t<int32_t> q({py::ssize_t(rows), py::ssize_t(k)});
            int32_t* pq = q.mutable_data();
            RoundingStatus st;
            {
                py::gil_scoped_release release;
                st = hw_aware_round(w.data(), rows, k, h.data(), scale.data(), row_weight.data(), bits, e, lam,
                                    radius, damp,
                                    BitCost{costs.empty() ? nullptr : costs.data(), false}, pq, nt);
            }
            if (st.bad_w >= 0) {
                std::ostringstream msg;
                msg << index_str("w", {py::ssize_t(rows), py::ssize_t(k)}, st.bad_w) << " = " << w.data()[st.bad_w]
                    << " is not finite";
                throw py::value_error(msg.str());
            }
            if (st.bad_h >= 0) {
                std::ostringstream msg;
                msg << index_str("h", {py::ssize_t(k), py::ssize_t(k)}, st.bad_h) << " = " << h.data()[st.bad_h]
                    << ": h must be a finite symmetric matrix with a non-negative diagonal (X^T X)";
                throw py::value_error(msg.str());
            }
            if (st.bad_scale >= 0) {
                std::ostringstream msg;
                msg << "scale[" << st.bad_scale << "] = " << scale.data()[st.bad_scale]
                    << " must be finite and > 0, with a finite reciprocal";
                throw py::value_error(msg.str());
            }
            if (st.bad_row_weight >= 0) {
                std::ostringstream msg;
                msg << "row_weight[" << st.bad_row_weight << "] = " << row_weight.data()[st.bad_row_weight]
                    << " must be finite and >= 0";
                throw py::value_error(msg.str());
            }
            if (st.not_psd)
                throw py::value_error("h is not positive semi-definite (it must be X^T X of the layer inputs); "
                                      "with damp=" + std::to_string(damp) + " its damped form has no Cholesky factor");
            return py::make_tuple(q, st.dead_inputs);
        },
        "w"_a, "h"_a, "scale"_a, "row_weight"_a, "bits"_a, "encoding"_a = "differential", "lam"_a = 0.0, "radius"_a = 2,
        "damp"_a = 0.01, "bit_cost"_a = py::none(), "n_threads"_a = py::none());
}

}  // namespace hamq::bind
