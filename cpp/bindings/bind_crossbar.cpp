#include "common.hpp"
#include "hamqcore/crossbar.hpp"

namespace hamq::bind {

namespace {

Mapping parse_mapping(const std::string& s) {
    if (s == "differential") return Mapping::Differential;
    if (s == "offset") return Mapping::Offset;
    throw py::value_error("mapping must be one of 'differential', 'offset', got '" + s + "'");
}

AdcKind parse_adc(const std::string& s) {
    if (s == "ideal") return AdcKind::Ideal;
    if (s == "multilevel") return AdcKind::Multilevel;
    if (s == "sar") return AdcKind::Sar;
    throw py::value_error("adc must be one of 'ideal', 'multilevel', 'sar', got '" + s + "'");
}

// A 2-D signed-integer matrix argument.
IntArray matrix(const py::handle& obj, const char* arg) {
    IntArray a = int_array(obj, arg);
    if (a.arr.ndim() != 2)
        throw py::value_error(std::string(arg) + " must be a 2-D array, got " +
                              std::to_string(a.arr.ndim()) + " dimensions");
    return a;
}

}  // namespace

void bind_crossbar(py::module_& m) {
    using namespace pybind11::literals;
    py::class_<Crossbar>(m, "Crossbar", "Crossbar simulator bound to one configuration.")
        .def(py::init([](int rows, int cols, int cell_bits, const std::string& mapping, double g_on,
                         double g_off, double v_read, double t_read, const std::string& adc,
                         int adc_bits, int cols_per_adc, int64_t adc_full_scale, double e_wordline,
                         double e_shift_add) {
                 CrossbarConfig c;
                 c.rows = rows;
                 c.cols = cols;
                 c.cell_bits = cell_bits;
                 c.mapping = parse_mapping(mapping);
                 c.g_on = g_on;
                 c.g_off = g_off;
                 c.v_read = v_read;
                 c.t_read = t_read;
                 c.adc = parse_adc(adc);
                 c.adc_bits = adc_bits;
                 c.cols_per_adc = cols_per_adc;
                 c.adc_full_scale = adc_full_scale;
                 c.e_wordline = e_wordline;
                 c.e_shift_add = e_shift_add;
                 const std::string err = validate(c);
                 if (!err.empty()) throw py::value_error(err);
                 py::gil_scoped_release release;  // the ADC table can take a few ms
                 return new Crossbar(c);
             }),
             py::kw_only(), "rows"_a = 128, "cols"_a = 128, "cell_bits"_a = 1,
             "mapping"_a = "differential", "g_on"_a = 1.0 / 6e3, "g_off"_a = 1.0 / 900e3,
             "v_read"_a = 0.5, "t_read"_a = 10e-9, "adc"_a = "multilevel", "adc_bits"_a = 5,
             "cols_per_adc"_a = 8, "adc_full_scale"_a = 0, "e_wordline"_a = 0.0,
             "e_shift_add"_a = 0.0)
        .def(
            "simulate",
            [](const Crossbar& xb, const py::handle& w, const py::handle& x, int w_bits,
               int a_bits, std::optional<bool> a_signed, std::optional<int> n_threads) {
                const std::string err = validate_layer(xb.config(), w_bits, a_bits);
                if (!err.empty()) throw py::value_error(err);
                const int nt = threads_arg(n_threads);
                const IntArray wa = matrix(w, "w"), xa = matrix(x, "x");
                if (xa.arr.shape(1) != wa.arr.shape(1))
                    throw py::value_error("x has " + std::to_string(xa.arr.shape(1)) +
                                          " columns but w has " + std::to_string(wa.arr.shape(1)) +
                                          " (both must be the layer's input size K)");
                CrossbarLayer L;
                L.w_type = wa.type;
                L.w = wa.arr.data();
                L.out = wa.arr.shape(0);
                L.k = wa.arr.shape(1);
                L.w_bits = w_bits;
                L.x_type = xa.type;
                L.x = xa.arr.data();
                L.n = xa.arr.shape(0);
                L.a_bits = a_bits;
                if (a_signed) {
                    L.a_signed = *a_signed;
                } else {  // signed exactly when some input is negative
                    L.a_signed = false;
                    for (int64_t i = 0; i < xa.size() && !L.a_signed; ++i) L.a_signed = xa.at(i) < 0;
                }
                CrossbarResult r;
                {
                    py::gil_scoped_release release;
                    r = xb.simulate(L, nt);
                }
                if (r.bad_w >= 0) throw_out_of_range("w", wa, r.bad_w, w_bits, "w_bits");
                if (r.bad_x >= 0) {
                    const int64_t lo = L.a_signed ? -(int64_t(1) << (a_bits - 1)) : 0;
                    const int64_t hi = L.a_signed ? (int64_t(1) << (a_bits - 1)) - 1
                                                  : (int64_t(1) << a_bits) - 1;
                    throw py::value_error(index_str("x", xa.shape(), r.bad_x) + " = " +
                                          std::to_string(xa.at(r.bad_x)) + " is outside the range [" +
                                          std::to_string(lo) + ", " + std::to_string(hi) + "] of " +
                                          (L.a_signed ? "signed" : "unsigned") +
                                          " a_bits=" + std::to_string(a_bits) + " inputs");
                }
                py::array_t<double> y({py::ssize_t(L.n), py::ssize_t(L.out)});
                std::copy(r.y.begin(), r.y.end(), y.mutable_data());
                py::dict d;
                d["y"] = y;
                d["e_cell"] = r.e_cell;
                d["e_adc"] = r.e_adc;
                d["e_wordline"] = r.e_wordline;
                d["e_shift_add"] = r.e_shift_add;
                d["sum_current"] = r.sum_current;
                d["max_current"] = r.max_current;
                d["conversions"] = r.conversions;
                d["pulses"] = r.pulses;
                d["row_tiles"] = r.row_tiles;
                d["col_tiles"] = r.col_tiles;
                d["arrays"] = r.arrays;
                d["columns"] = r.columns;
                d["on_cells"] = r.on_cells;
                d["cells"] = r.cells;
                d["latency"] = r.latency;
                d["a_signed"] = L.a_signed;
                return d;
            },
            "w"_a, "x"_a, "w_bits"_a, "a_bits"_a, "a_signed"_a = py::none(),
            "n_threads"_a = py::none(),
            "Simulate one layer: w (out x K) integer weights, x (N x K) integer inputs.");
}

}  // namespace hamq::bind
