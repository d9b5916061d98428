#include "common.hpp"

#include <cmath>
#include <sstream>

#include "hamqcore/parallel.hpp"

namespace hamq::bind {

const char* const kEncodings[4] = {"differential", "sign_magnitude", "twos_complement", "offset"};

Encoding parse_encoding(const std::string& name, const char* arg) {
    for (int i = 0; i < 4; ++i)
        if (name == kEncodings[i]) return Encoding(i);
    throw py::value_error(std::string(arg) +
                          " must be one of 'differential', 'sign_magnitude', 'twos_complement', "
                          "'offset', got '" + name + "'");
}

const char* encoding_name(Encoding e) { return kEncodings[int(e)]; }

Relaxation parse_relaxation(const std::string& name) {
    if (name == "linear") return Relaxation::Linear;
    if (name == "cosine") return Relaxation::Cosine;
    throw py::value_error("relaxation must be one of 'linear', 'cosine', got '" + name + "'");
}

void check_bits(int bits, const char* arg) {
    if (bits < kMinBits || bits > kMaxBits)
        throw py::value_error(std::string(arg) + " must be an integer in 2..16, got " +
                              std::to_string(bits));
}

void check_cell_bits(int cell_bits) {
    if (cell_bits != 1 && cell_bits != 2 && cell_bits != 4)
        throw py::value_error("cell_bits must be one of 1, 2, 4, got " + std::to_string(cell_bits));
}

int threads_arg(const std::optional<int>& n_threads) {
    if (!n_threads) return default_threads();
    const int n = *n_threads, hw = hardware_threads();
    if (n == 0 || n < -hw || n > kMaxThreadsPerProcessor * hw)
        throw py::value_error("n_threads must be a thread count in 1.." + std::to_string(kMaxThreadsPerProcessor * hw) +
                              " (" + std::to_string(kMaxThreadsPerProcessor) + " x the " + std::to_string(hw) +
                              " available processors), or negative to count back from them (-1 = all), got " +
                              std::to_string(n));
    return resolve_threads(n);
}

int64_t IntArray::at(int64_t flat) const {
    const void* p = arr.data();
    switch (type) {
        case IntType::I8: return static_cast<const int8_t*>(p)[flat];
        case IntType::I16: return static_cast<const int16_t*>(p)[flat];
        case IntType::I32: return static_cast<const int32_t*>(p)[flat];
        case IntType::I64: default: return static_cast<const int64_t*>(p)[flat];
    }
}


IntArray int_array(const py::handle& obj, const char* arg) {
    py::array a = py::array::ensure(obj);
    if (!a) throw py::type_error(std::string(arg) + " must be an array of signed integers");
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    if (kind != 'i')
        throw py::type_error(std::string(arg) +
                             " must be an array of signed integers (int8, int16, int32 or int64), "
                             "got dtype " + std::string(py::str(a.dtype())));
    switch (size) {
        case 1: return {contiguous_as<int8_t>(a, arg), IntType::I8};
        case 2: return {contiguous_as<int16_t>(a, arg), IntType::I16};
        case 4: return {contiguous_as<int32_t>(a, arg), IntType::I32};
        default: return {contiguous_as<int64_t>(a, arg), IntType::I64};
    }
}

py::array float_array(const py::handle& obj, const char* arg) {
    py::array a = py::array::ensure(obj);
    if (!a) throw py::type_error(std::string(arg) + " must be a float32 or float64 array");
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    if (kind != 'f' || (size != 4 && size != 8))
        throw py::type_error(std::string(arg) + " must be a float32 or float64 array, got dtype " +
                             std::string(py::str(a.dtype())));
    if (size == 4) return contiguous_as<float>(a, arg);
    return contiguous_as<double>(a, arg);
}

bool is_float32(const py::array& a) { return a.dtype().itemsize() == 4; }

std::string shape_str(const std::vector<py::ssize_t>& shape) {
    std::string r = "(";
    for (size_t i = 0; i < shape.size(); ++i) r += (i ? ", " : "") + std::to_string(shape[i]);
    return r + (shape.size() == 1 ? ",)" : ")");
}

std::string shape_str(const py::array& a) { return shape_str({a.shape(), a.shape() + a.ndim()}); }

std::string index_str(const char* arg, const std::vector<py::ssize_t>& shape, int64_t flat) {
    if (shape.empty()) return arg;
    std::vector<int64_t> idx(shape.size());
    for (size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    std::ostringstream s;
    s << arg << "[";
    for (size_t d = 0; d < idx.size(); ++d) s << (d ? ", " : "") << idx[d];
    s << "]";
    return s.str();
}

void throw_out_of_range(const char* arg, const IntArray& a, int64_t flat, int bits,
                        const char* bits_arg) {
    const int64_t hi = level_max(bits);
    throw py::value_error(index_str(arg, a.shape(), flat) + " = " + std::to_string(a.at(flat)) +
                          " is outside the range [" + std::to_string(-hi) + ", " +
                          std::to_string(hi) + "] of " + bits_arg + "=" + std::to_string(bits));
}

void throw_not_finite(const char* arg, const py::array& a, int64_t flat) {
    const double v = is_float32(a) ? double(static_cast<const float*>(a.data())[flat])
                                   : static_cast<const double*>(a.data())[flat];
    std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
    std::ostringstream s;
    s << index_str(arg, shape, flat) << " = " << v << " is not finite";
    throw py::value_error(s.str());
}

std::vector<double> bit_cost_arg(const py::object& obj, int bits, int64_t rows, bool* per_row) {
    if (per_row) *per_row = false;
    if (obj.is_none()) return {};
    const std::string shapes = per_row ? "(bits,) or (rows, bits)" : "(bits,)";
    py::array a = py::array::ensure(obj);
    if (!a || (a.dtype().kind() != 'f' && a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
        throw py::type_error("bit_cost must be None or a float array of shape " + shapes);
    const bool ok1 = a.ndim() == 1 && a.shape(0) == bits;
    const bool ok2 = per_row && a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == bits;
    if (!ok1 && !ok2) {
        std::ostringstream msg;
        msg << "bit_cost must have shape (" << bits << ",)";
        if (per_row) msg << " or (" << rows << ", " << bits << ") for bits=" << bits << " and " << rows << " rows";
        msg << ", got " << shape_str(a);
        throw py::value_error(msg.str());
    }
    if (per_row) *per_row = ok2;
    auto c = contiguous_as<double>(a, "bit_cost");
    std::vector<double> out(c.data(), c.data() + c.size());
    for (size_t i = 0; i < out.size(); ++i)
        if (!std::isfinite(out[i]) || out[i] < 0) {
            std::ostringstream msg;
            msg << "bit_cost must be finite and >= 0, got " << out[i] << " at " << (per_row ? "flat index " : "index ") << i;
            throw py::value_error(msg.str());
        }
    // every level's cost (a sum of some of its row's bit costs) must be a finite number, or the
    // relaxed penalty's slopes (differences of level costs) would be inf - inf = NaN
    for (size_t r0 = 0; r0 < out.size(); r0 += size_t(bits)) {
        double sum = 0;
        for (int b = 0; b < bits; ++b) sum += out[r0 + size_t(b)];
        if (!std::isfinite(sum) || sum > kMaxLevelCost) {
            std::ostringstream msg;
            msg << "bit_cost is too large: a level's cost (the sum of its 1-bits' costs) must stay below "
                << kMaxLevelCost << ", got bit costs summing to " << sum;
            if (per_row && *per_row) msg << " in row " << r0 / size_t(bits);
            throw py::value_error(msg.str());
        }
    }
    return out;
}

}  // namespace hamq::bind
