#include <cmath>

#include "common.hpp"
#include "hamqcore/crossbar.hpp"

namespace hamq::bind {

namespace {

const char* const kModels[] = {"neurosim-1.3", "mnsim-2.0", "bitline", "neurosim-1.4"};
const char* const kMappings[] = {"offset", "differential", "twos_complement"};
const char* const kAdcs[] = {"ideal", "multilevel", "sar", "fixed"};
const char* const kRoadmaps[] = {"lp", "hp"};
const char* const kResolutions[] = {"fixed", "per_column"};
const char* const kColumnOrders[] = {"weight", "digit"};

template <class E, size_t N>
E parse_enum(const std::string& s, const char* const (&names)[N], const char* field) {
    std::string all;
    for (size_t i = 0; i < N; ++i) {
        if (s == names[i]) return E(i);
        all += std::string(i ? ", '" : "'") + names[i] + "'";
    }
    throw py::value_error(std::string(field) + " must be one of " + all + ", got '" + s + "'");
}

// A 2-D signed-integer matrix argument.
IntArray matrix(const py::handle& obj, const char* arg) {
    IntArray a = int_array(obj, arg);
    if (a.arr.ndim() != 2)
        throw py::value_error(std::string(arg) + " must be a 2-D array, got " + std::to_string(a.arr.ndim()) +
                              " dimensions");
    return a;
}

// A count argument of the gate models: finite and >= 0.
void check_count(double v, const char* arg) {
    if (!std::isfinite(v) || v < 0)
        throw py::value_error(std::string(arg) + " must be finite and >= 0, got " + std::to_string(v));
}

py::dict config_dict(const CrossbarConfig& c) {
    py::dict d;
    d["model"] = kModels[int(c.model)];
    d["rows"] = c.rows;
    d["cols"] = c.cols;
    d["cell_bits"] = c.cell_bits;
    d["mapping"] = kMappings[int(c.mapping)];
    d["reference_column"] = c.reference_column;
    d["g_on"] = c.g_on;
    d["g_off"] = c.g_off;
    d["v_read"] = c.v_read;
    d["t_read"] = c.t_read;
    d["r_access"] = c.r_access;
    d["r_wire_row"] = c.r_wire_row;
    d["r_wire_col"] = c.r_wire_col;
    d["roadmap"] = kRoadmaps[int(c.roadmap)];
    d["adc"] = kAdcs[int(c.adc)];
    d["adc_bits"] = c.adc_bits;
    d["cols_per_adc"] = c.cols_per_adc;
    d["adc_full_scale"] = c.adc_full_scale;
    d["e_adc"] = c.e_adc;
    d["adc_resolution"] = kResolutions[int(c.adc_resolution)];
    d["skip_empty"] = c.skip_empty;
    d["rows_per_conversion"] = c.rows_per_conversion;
    d["complement"] = c.complement;
    d["column_order"] = kColumnOrders[int(c.column_order)];
    return d;
}

// The error for weight element i outside the mapping's range at w_bits.
py::value_error weight_range_error(const IntArray& wa, int64_t i, Mapping mp, int w_bits) {
    return py::value_error(index_str("w", wa.shape(), i) + " = " + std::to_string(wa.at(i)) +
                           " is outside the range [" + std::to_string(mapping_level_min(mp, w_bits)) + ", " +
                           std::to_string(mapping_level_max(mp, w_bits)) + "] of w_bits=" + std::to_string(w_bits) +
                           " under mapping '" + kMappings[int(mp)] + "'");
}

// One value per digit column (arrays x digits), each finite and > 0; empty when not given.
std::vector<double> per_digit_column(const py::object& obj, const char* name, size_t want) {
    if (obj.is_none()) return {};
    std::vector<double> v = obj.cast<std::vector<double>>();
    if (v.size() != want)
        throw py::value_error(std::string(name) + " must hold " + std::to_string(want) +
                              " values (arrays x digits), got " + std::to_string(v.size()));
    for (double x : v)
        if (!(x > 0) || !std::isfinite(x))
            throw py::value_error(std::string(name) + " must be finite and > 0, got " + std::to_string(x));
    return v;
}

// The index of the first of v[0, n) that is not a cell level in [0, dmax] (NaN included), or -1.
int64_t first_bad_level(const double* v, int64_t n, int dmax) {
    for (int64_t i = 0; i < n; ++i)
        if (!(v[i] >= 0 && v[i] <= dmax)) return i;
    return -1;
}

std::string level_error(const std::string& where, double v, int dmax) {
    return where + " = " + std::to_string(v) + " must be a level in [0, " + std::to_string(dmax) + "]";
}

// The drawn cells (CrossbarLayer::cell_factor / cell_state / state_digits): all or none; the factors
// (columns, k) float64, finite and >= 0; the states (columns, k) uint8, each a row of state_digits;
// state_digits (states, dmax + 1) float64 levels in [0, dmax], 1 to 255 states.
struct DrawnCells {
    bool given = false;
    py::array_t<double, py::array::c_style | py::array::forcecast> factor;
    py::array_t<uint8_t, py::array::c_style | py::array::forcecast> state;
    py::array_t<double, py::array::c_style | py::array::forcecast> levels;
};

DrawnCells drawn_cells(const py::object& factor, const py::object& state, const py::object& levels, int64_t columns,
                       int64_t k, int dmax) {
    DrawnCells d;
    const int given = int(!factor.is_none()) + int(!state.is_none()) + int(!levels.is_none());
    if (given == 0) return d;
    if (given != 3)
        throw py::value_error(std::string("cell_factor, cell_state and state_digits come together "
                                          "(hamqcore.crossbar.cell_draws): got only ") +
                              (factor.is_none() ? "" : "cell_factor ") + (state.is_none() ? "" : "cell_state ") +
                              (levels.is_none() ? "" : "state_digits"));
    const py::array fa = float_array(factor, "cell_factor");
    const py::array la = float_array(levels, "state_digits");
    py::array ua = py::array::ensure(state);
    if (!ua || ua.dtype().kind() != 'u' || ua.dtype().itemsize() != 1)
        throw py::type_error("cell_state must be a uint8 array");
    const std::vector<py::ssize_t> want = {py::ssize_t(columns), py::ssize_t(k)};
    for (const auto& [a, name] : {std::pair<const py::array&, const char*>{fa, "cell_factor"}, {ua, "cell_state"}})
        if (std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()) != want)
            throw py::value_error(std::string(name) + " must have shape (digit columns, K) = " + shape_str(want) +
                                  ", got " + shape_str(a));
    if (la.ndim() != 2 || la.shape(1) != dmax + 1 || la.shape(0) < 1 || la.shape(0) > 255)
        throw py::value_error("state_digits must have shape (states, 2^cell_bits) with 1 to 255 states, "
                              "2^cell_bits = " + std::to_string(dmax + 1) + ", got " + shape_str(la));
    d.given = true;
    d.factor = contiguous_as<double>(fa, "cell_factor");
    d.state = contiguous_as<uint8_t>(ua, "cell_state");
    d.levels = contiguous_as<double>(la, "state_digits");
    const int64_t bad = first_bad_level(d.levels.data(), int64_t(d.levels.size()), dmax);
    if (bad >= 0)
        throw py::value_error(level_error(index_str("state_digits", {la.shape(0), la.shape(1)}, bad),
                                          d.levels.data()[bad], dmax));
    const double* f = d.factor.data();
    const uint8_t* u = d.state.data();
    for (py::ssize_t i = 0; i < d.factor.size(); ++i) {
        if (!(f[i] >= 0) || !std::isfinite(f[i]))
            throw py::value_error(index_str("cell_factor", want, i) + " = " + std::to_string(f[i]) +
                                  " must be finite and >= 0");
        if (u[i] >= la.shape(0))
            throw py::value_error(index_str("cell_state", want, i) + " = " + std::to_string(int(u[i])) +
                                  " must index a row of state_digits (< " + std::to_string(la.shape(0)) + ")");
    }
    return d;
}

}  // namespace

void bind_crossbar(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "crossbar_preset",
        [](const std::string& model) { return config_dict(preset_config(parse_enum<Model>(model, kModels, "model"))); },
        "model"_a, "The default configuration of an accounting model, as a dict of fields.");
    m.def(
        "neurosim13_dff_energy",
        [](const std::string& roadmap, double num_read, double num_dff, bool validated) {
            check_count(num_read, "num_read");
            check_count(num_dff, "num_dff");
            return neurosim13_dff_energy(parse_enum<Roadmap>(roadmap, kRoadmaps, "roadmap"), num_read, num_dff, validated);
        },
        "roadmap"_a, "num_read"_a, "num_dff"_a, "validated"_a,
        "NeuroSim V1.3's DFF.cpp DFF::CalculatePower at 22 nm (J): num_dff flip-flops clocked num_read times "
        "(validated: times its switching activity gamma).");
    m.def(
        "neurosim13_adder_energy",
        [](const std::string& roadmap, int num_bit, double num_adder, double num_read) {
            if (num_bit < 1) throw py::value_error("num_bit must be >= 1, got " + std::to_string(num_bit));
            check_count(num_adder, "num_adder");
            check_count(num_read, "num_read");
            return neurosim13_adder_energy(parse_enum<Roadmap>(roadmap, kRoadmaps, "roadmap"), num_bit, num_adder,
                                           num_read);
        },
        "roadmap"_a, "num_bit"_a, "num_adder"_a, "num_read"_a,
        "NeuroSim V1.3's Adder.cpp Adder::CalculatePower at 22 nm (J): num_adder ripple-carry adders of num_bit "
        "bits, num_read times, times its switching activity delta.");
    m.attr("MODELS") = name_tuple(kModels);
    m.attr("MAPPINGS") = name_tuple(kMappings);
    m.attr("ADCS") = name_tuple(kAdcs);
    m.attr("ROADMAPS") = name_tuple(kRoadmaps);
    m.attr("ADC_RESOLUTIONS") = name_tuple(kResolutions);
    m.attr("LADDER_TIE") = kLadderTie;
    m.attr("COLUMN_ORDERS") = name_tuple(kColumnOrders);
    m.attr("ENERGY_COMPONENTS") = [] {
        py::tuple t(static_cast<size_t>(kNumComponents));
        for (int i = 0; i < kNumComponents; ++i) t[size_t(i)] = component_name(i);
        return t;
    }();

    py::class_<CrossbarResult>(m, "CrossbarResult", "One layer's simulation (read-only).")
        .def_property_readonly("energy",
                               [](const CrossbarResult& r) {
                                   py::dict d;
                                   for (int i = 0; i < kNumComponents; ++i) d[component_name(i)] = r.energy[i];
                                   return d;
                               },
                               "Energy by component (J, whole batch).")
        .def_property_readonly("output",
                               [](const CrossbarResult& r) -> py::object {
                                   if (r.y.empty() && r.conversions > 0) return py::none();
                                   py::array_t<double> a(py::ssize_t(r.y.size()));
                                   std::copy(r.y.begin(), r.y.end(), a.mutable_data());
                                   return a;
                               },
                               "Functional output, flat N * out (None when not computed).")
        .def_readonly("sum_current", &CrossbarResult::sum_current)
        .def_readonly("max_current", &CrossbarResult::max_current)
        .def_readonly("conversions", &CrossbarResult::conversions)
        .def_readonly("idle_conversions", &CrossbarResult::idle_conversions)
        .def_readonly("skipped_conversions", &CrossbarResult::skipped_conversions)
        .def_readonly("subarray_reads", &CrossbarResult::subarray_reads)
        .def_readonly("skipped_reads", &CrossbarResult::skipped_reads)
        .def_readonly("read_cycles", &CrossbarResult::read_cycles)
        .def_readonly("skipped_cycles", &CrossbarResult::skipped_cycles)
        .def_readonly("inverted_columns", &CrossbarResult::inverted_columns)
        .def_property_readonly("resolution_columns",
                               [](const CrossbarResult& r) {
                                   py::array_t<int64_t> a(kMaxBits + 1);
                                   std::copy(r.resolution_columns, r.resolution_columns + kMaxBits + 1, a.mutable_data());
                                   return a;
                               },
                               "Physical columns (per conversion group) by ADC bits; entry 0 counts skipped ones.")
        .def_readonly("driven_rows", &CrossbarResult::driven_rows)
        .def_readonly("pulses", &CrossbarResult::pulses)
        .def_readonly("row_tiles", &CrossbarResult::row_tiles)
        .def_readonly("col_tiles", &CrossbarResult::col_tiles)
        .def_readonly("arrays", &CrossbarResult::arrays)
        .def_readonly("columns", &CrossbarResult::columns)
        .def_readonly("on_cells", &CrossbarResult::on_cells)
        .def_readonly("cells", &CrossbarResult::cells)
        .def_readonly("latency", &CrossbarResult::latency)
        .def_property_readonly("histogram",
                               [](const CrossbarResult& r) -> py::object {
                                   if (r.hist_bins == 0) return py::none();
                                   const py::ssize_t cols = py::ssize_t(r.hist.size()) / py::ssize_t(r.hist_bins);
                                   py::array_t<int64_t> h({cols, py::ssize_t(r.hist_bins)});
                                   std::copy(r.hist.begin(), r.hist.end(), h.mutable_data());
                                   return py::make_tuple(h, r.hist_vs, r.hist_ss);
                               },
                               "Calibration (histogram_bins_per_unit > 0): (counts [digit columns][bins], sum of "
                               "(reading - leakage) x S, sum of S^2) per digit column; None otherwise.");

    py::class_<Crossbar>(m, "Crossbar", "Crossbar simulator bound to one configuration.")
        .def(py::init([](const std::string& model, int rows, int cols, int cell_bits, const std::string& mapping,
                         bool reference_column, double g_on, double g_off, double v_read, double t_read,
                         double r_access, double r_wire_row, double r_wire_col, const std::string& roadmap,
                         const std::string& adc, int adc_bits, int cols_per_adc, int64_t adc_full_scale,
                         double e_adc, const std::string& adc_resolution, bool skip_empty, int rows_per_conversion,
                         bool complement, const std::string& column_order, int gain_bits,
                         bool digit_references) {
                 CrossbarConfig c;
                 c.model = parse_enum<Model>(model, kModels, "model");
                 c.rows = rows;
                 c.cols = cols;
                 c.cell_bits = cell_bits;
                 c.mapping = parse_enum<Mapping>(mapping, kMappings, "mapping");
                 c.reference_column = reference_column;
                 c.g_on = g_on;
                 c.g_off = g_off;
                 c.v_read = v_read;
                 c.t_read = t_read;
                 c.r_access = r_access;
                 c.r_wire_row = r_wire_row;
                 c.r_wire_col = r_wire_col;
                 c.roadmap = parse_enum<Roadmap>(roadmap, kRoadmaps, "roadmap");
                 c.adc = parse_enum<AdcKind>(adc, kAdcs, "adc");
                 c.adc_bits = adc_bits;
                 c.cols_per_adc = cols_per_adc;
                 c.adc_full_scale = adc_full_scale;
                 c.e_adc = e_adc;
                 c.adc_resolution = parse_enum<AdcResolution>(adc_resolution, kResolutions, "adc_resolution");
                 c.skip_empty = skip_empty;
                 c.rows_per_conversion = rows_per_conversion;
                 c.complement = complement;
                 c.column_order = parse_enum<ColumnOrder>(column_order, kColumnOrders, "column_order");
                 c.gain_bits = gain_bits;
                 c.digit_references = digit_references;
                 const std::string err = validate(c);
                 if (!err.empty()) throw py::value_error(err);
                 py::gil_scoped_release release;  // the ADC table can take a few ms
                 return new Crossbar(c);
             }),
             py::kw_only(), "model"_a, "rows"_a, "cols"_a, "cell_bits"_a, "mapping"_a, "reference_column"_a,
             "g_on"_a, "g_off"_a, "v_read"_a, "t_read"_a, "r_access"_a, "r_wire_row"_a, "r_wire_col"_a,
             "roadmap"_a, "adc"_a, "adc_bits"_a, "cols_per_adc"_a, "adc_full_scale"_a, "e_adc"_a,
             "adc_resolution"_a, "skip_empty"_a, "rows_per_conversion"_a, "complement"_a, "column_order"_a, "gain_bits"_a = 0,
             "digit_references"_a = false)
        .def(
            "digit_conductance",
            [](const Crossbar& xb, const std::optional<std::vector<double>>& levels) {
                if (!levels) return digit_conductances(xb.config());
                const int dmax = (1 << xb.config().cell_bits) - 1;
                const int64_t bad = first_bad_level(levels->data(), int64_t(levels->size()), dmax);
                if (bad >= 0)
                    throw py::value_error(level_error("levels[" + std::to_string(bad) + "]", (*levels)[size_t(bad)], dmax));
                return level_conductances(xb.config(), *levels);
            },
            "levels"_a = py::none(),
            "The conductance (S) of a cell holding each digit 0 .. 2^cell_bits - 1 (or each of levels, digit "
            "units in [0, dmax]) at the array's mean position.")
        .def(
            "stored_digits",
            [](const Crossbar& xb, const py::handle& w, int w_bits) {
                const std::string err = validate_layer(xb.config(), w_bits, 8);
                if (!err.empty()) throw py::value_error(err);
                const IntArray wa = matrix(w, "w");
                const Mapping mp = xb.config().mapping;
                const int64_t lo = mapping_level_min(mp, w_bits), hi = mapping_level_max(mp, w_bits);
                for (int64_t i = 0; i < wa.size(); ++i)
                    if (wa.at(i) < lo || wa.at(i) > hi) throw weight_range_error(wa, i, mp, w_bits);
                const int cb = xb.config().cell_bits;
                const int64_t A = mapping_arrays(mp), D = mapping_digits(mp, w_bits, cb);
                const int64_t out = wa.arr.shape(0), k = wa.arr.shape(1);
                py::array_t<uint8_t> digits({A, D, out, k});
                uint8_t* dst = digits.mutable_data();
                {
                    py::gil_scoped_release release;
                    stored_digits(wa.type, wa.arr.data(), out, k, w_bits, mp, cb, dst);
                }
                return py::make_tuple(digits, digit_coefficients(mp, w_bits, cb));
            },
            "w"_a, "w_bits"_a,
            "The digits the mapping stores for w (out x K): (arrays, digits, out, K) uint8, digit 0 the least "
            "significant, and each digit column's shift-add weight (arrays * digits).")
        .def(
            "simulate",
            [](const Crossbar& xb, const py::handle& w, const py::handle& x, int w_bits, int a_bits,
               std::optional<bool> a_signed, std::optional<int> n_threads, bool floor, bool output,
               const py::object& digit_full_scale, bool conductance, const py::object& digit_gain,
               double histogram_bins_per_unit, bool energy, const py::object& cell_factor,
               const py::object& cell_state, const py::object& state_digits) {
                const std::string err = validate_layer(xb.config(), w_bits, a_bits);
                if (!err.empty()) throw py::value_error(err);
                const int nt = threads_arg(n_threads);
                const IntArray wa = matrix(w, "w"), xa = matrix(x, "x");
                if (xa.arr.shape(1) != wa.arr.shape(1))
                    throw py::value_error("x has " + std::to_string(xa.arr.shape(1)) + " columns but w has " +
                                          std::to_string(wa.arr.shape(1)) + " (both must be the layer's input size K)");
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
                L.floor = floor;
                L.output = output;
                const CrossbarConfig& cfg = xb.config();
                if (conductance && cfg.cell_bits > 2)
                    throw py::value_error("conductance=True reads cells of at most 2 bits here (the model conductance "
                                          "of a 4-bit digit is not exact per digit); got cell_bits=" +
                                          std::to_string(cfg.cell_bits) + " (hamqcore.readout reads every cell)");
                L.conductance = conductance;
                if (!(histogram_bins_per_unit >= 0) || !std::isfinite(histogram_bins_per_unit) ||
                    histogram_bins_per_unit > 1024)
                    throw py::value_error("histogram_bins_per_unit must be in [0, 1024] (0: no histogram), got " +
                                          std::to_string(histogram_bins_per_unit));
                if (histogram_bins_per_unit > 0 && (output || floor))
                    throw py::value_error(std::string("histogram_bins_per_unit > 0 histograms the ADC inputs of the "
                                                      "stored weights instead of reading them: it needs output=False "
                                                      "and floor=False, got ") + (output ? "output=True" : "floor=True"));
                L.histogram_bins_per_unit = histogram_bins_per_unit;
                if (!energy && !output && !(histogram_bins_per_unit > 0))
                    throw py::value_error("energy=False computes the functional output alone: it needs output=True "
                                          "(or calibration's histograms, histogram_bins_per_unit > 0)");
                L.energy = energy;
                const size_t n_digit_cols =
                    size_t(mapping_arrays(cfg.mapping) * mapping_digits(cfg.mapping, w_bits, cfg.cell_bits));
                const std::vector<double> fs = per_digit_column(digit_full_scale, "digit_full_scale", n_digit_cols);
                if (!fs.empty()) {
                    if (cfg.adc_resolution == AdcResolution::PerColumn)
                        throw py::value_error("digit_full_scale sets the references that per-column resolution sets itself");
                    L.digit_full_scale = fs.data();
                }
                const std::vector<double> gain = per_digit_column(digit_gain, "digit_gain", n_digit_cols);
                if (!gain.empty()) {
                    if (!conductance)
                        throw py::value_error("digit_gain scales conductance readings: it needs conductance=True");
                    L.digit_gain = gain.data();
                }
                const bool ref = cfg.mapping == Mapping::Offset && cfg.reference_column;
                const DrawnCells drawn =
                    drawn_cells(cell_factor, cell_state, state_digits, int64_t(n_digit_cols) * (L.out + (ref ? 1 : 0)),
                                L.k, (1 << cfg.cell_bits) - 1);
                if (drawn.given) {
                    if (!energy)
                        throw py::value_error("cell_factor / cell_state / state_digits set the cells the energy path "
                                              "charges: they need energy=True (hamqcore.readout reads drawn cells)");
                    L.cell_factor = drawn.factor.data();
                    L.cell_state = drawn.state.data();
                    L.state_digits = drawn.levels.data();
                    L.n_states = int(drawn.levels.shape(0));
                }
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
                if (r.bad_w >= 0) throw weight_range_error(wa, r.bad_w, xb.config().mapping, w_bits);
                if (r.bad_x >= 0) {
                    const int64_t lo = L.a_signed ? -(int64_t(1) << (a_bits - 1)) : 0;
                    const int64_t hi = L.a_signed ? (int64_t(1) << (a_bits - 1)) - 1 : (int64_t(1) << a_bits) - 1;
                    throw py::value_error(index_str("x", xa.shape(), r.bad_x) + " = " + std::to_string(xa.at(r.bad_x)) +
                                          " is outside the range [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                          "] of " + (L.a_signed ? "signed" : "unsigned") +
                                          " a_bits=" + std::to_string(a_bits) + " inputs");
                }
                return r;
            },
            "w"_a, "x"_a, "w_bits"_a, "a_bits"_a, "a_signed"_a = py::none(), "n_threads"_a = py::none(),
            "floor"_a = false, "output"_a = true, "digit_full_scale"_a = py::none(), "conductance"_a = false,
            "digit_gain"_a = py::none(), "histogram_bins_per_unit"_a = 0.0, "energy"_a = true,
            "cell_factor"_a = py::none(), "cell_state"_a = py::none(), "state_digits"_a = py::none(),
            "Simulate one layer: w (out x K) integer weights, x (N x K) integer inputs.");
}

}  // namespace hamq::bind
