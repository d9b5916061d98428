// Argument validation shared by the bind_* files. Every user-facing error message is made here, so
// they name the argument and the offending value the same way everywhere.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "hamqcore/encoding.hpp"

namespace hamq::bind {

namespace py = pybind11;

Encoding parse_encoding(const std::string& name, const char* arg = "encoding");
const char* encoding_name(Encoding e);
Relaxation parse_relaxation(const std::string& name);
void check_bits(int bits, const char* arg = "bits");
void check_cell_bits(int cell_bits);
int threads_arg(const std::optional<int>& n_threads);

// A C-contiguous signed-integer array (a copy only when the input was not contiguous).
struct IntArray {
    py::array arr;
    IntType type;
    int64_t size() const { return int64_t(arr.size()); }
    int64_t at(int64_t flat) const;
    std::vector<py::ssize_t> shape() const { return {arr.shape(), arr.shape() + arr.ndim()}; }
};
IntArray int_array(const py::handle& obj, const char* arg);

// A C-contiguous float32/float64 array.
py::array float_array(const py::handle& obj, const char* arg);
bool is_float32(const py::array& a);

// A C-contiguous copy-or-view of an array whose dtype kind was already validated, converted to T.
// pybind11's ensure() returns a null handle (and clears the error) when the copy cannot be made;
// for a validated array that is an allocation failure: a MemoryError naming the argument.
template <class T>
py::array_t<T, py::array::c_style | py::array::forcecast> contiguous_as(const py::array& a, const char* arg) {
    auto out = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!out) {
        PyErr_Format(PyExc_MemoryError, "cannot allocate a contiguous copy of %s (%zd elements)", arg,
                     static_cast<Py_ssize_t>(a.size()));
        throw py::error_already_set();
    }
    return out;
}

// A tuple of C strings: the one list of an enum's names, exported so Python never retypes it.
template <size_t N>
py::tuple name_tuple(const char* const (&names)[N]) {
    py::tuple t(N);
    for (size_t i = 0; i < N; ++i) t[i] = names[i];
    return t;
}
extern const char* const kEncodings[4];

// The largest cost of one level under per-bit costs (bit_cost_arg): prices are meant in units of
// about one ON cell, and this bound keeps level costs, their differences and their gradients (a
// slope over a step down to ~1e-8) finite in single precision (float32 max ~3.4e38).
constexpr double kMaxLevelCost = 1e20;

// "(2, 3)" / "(4,)" / "()": a shape as Python prints it.
std::string shape_str(const std::vector<py::ssize_t>& shape);
std::string shape_str(const py::array& a);
// "q[1, 2]" (or "q" for a 0-d array) for a flat C-order index.
std::string index_str(const char* arg, const std::vector<py::ssize_t>& shape, int64_t flat);

// The output array of a pass over x: `out` when given (a numpy array of x's shape and dtype,
// C-contiguous, writeable; with alias_ok false it may not overlap x), else a new array. A non-array
// (a list) is a TypeError: converting it would write into a copy and lose the result.
template <class T>
py::array_t<T> output_like(const py::array& x, const py::object& out, bool alias_ok) {
    const std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
    if (out.is_none()) return py::array_t<T>(shape);
    if (!py::isinstance<py::array>(out))
        throw py::type_error(std::string("out must be a numpy array, got ") + std::string(py::str(py::type::of(out))));
    const py::array o = py::reinterpret_borrow<py::array>(out);
    if (!py::isinstance<py::array_t<T>>(o) || o.ndim() != x.ndim() ||
        !std::equal(shape.begin(), shape.end(), o.shape()) || !(o.flags() & py::array::c_style) || !o.writeable())
        throw py::value_error("out must be a writeable C-contiguous array of shape " + shape_str(x) + " and dtype " +
                              std::string(py::str(x.dtype())));
    const char *x0 = static_cast<const char*>(x.data()), *o0 = static_cast<const char*>(o.data());
    const py::ssize_t bytes = x.nbytes();
    if (!alias_ok && bytes > 0 && o0 < x0 + bytes && x0 < o0 + bytes)
        throw py::value_error("out must not overlap the input");
    return py::reinterpret_borrow<py::array_t<T>>(o);
}

[[noreturn]] void throw_out_of_range(const char* arg, const IntArray& a, int64_t flat, int bits,
                                     const char* bits_arg = "bits");
[[noreturn]] void throw_not_finite(const char* arg, const py::array& a, int64_t flat);

// Per-bit costs: None (an empty vector), shape (bits,) or, when per_row is given, (rows, bits) (then
// *per_row says which); finite and >= 0; as float64 (copied: small).
std::vector<double> bit_cost_arg(const py::object& obj, int bits, int64_t rows, bool* per_row = nullptr);

}  // namespace hamq::bind
