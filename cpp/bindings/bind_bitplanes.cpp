#include "common.hpp"
#include "hamqcore/bitplanes.hpp"

namespace hamq::bind {

void bind_bitplanes(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "pack_bitplanes",
        [](const py::handle& q, int bits, const std::string& encoding, int cell_bits,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            check_cell_bits(cell_bits);
            const int nt = threads_arg(n_threads);
            const IntArray a = int_array(q, "q");
            std::vector<py::ssize_t> shape = a.shape();
            if (shape.empty()) shape.push_back(1);  // a 0-d weight is a length-1 column
            const int64_t k = shape.back();
            const int64_t rows = k ? a.size() / k : [&] {
                int64_t r = 1;
                for (size_t d = 0; d + 1 < shape.size(); ++d) r *= shape[d];
                return r;
            }();
            std::vector<py::ssize_t> out_shape;
            if (bitplane_arrays(e) == 2) out_shape.push_back(2);
            out_shape.push_back(bitplane_digits(bits, e, cell_bits));
            out_shape.insert(out_shape.end(), shape.begin(), shape.end() - 1);
            out_shape.push_back(bitplane_words(k, cell_bits));
            py::array_t<uint64_t> out(out_shape);
            uint64_t* o = out.mutable_data();
            int64_t bad;
            {
                py::gil_scoped_release release;
                bad = pack_bitplanes(a.type, a.arr.data(), rows, k, bits, e, cell_bits, o, nt);
            }
            if (bad >= 0) throw_out_of_range("q", a, bad, bits);
            return out;
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "cell_bits"_a = 1,
        "n_threads"_a = py::none());

    m.def(
        "unpack_bitplanes",
        [](const py::handle& planes, int64_t length, int bits, const std::string& encoding,
           int cell_bits, std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            check_cell_bits(cell_bits);
            const int nt = threads_arg(n_threads);
            if (length < 0)
                throw py::value_error("length must be >= 0, got " + std::to_string(length));
            py::array p = py::array::ensure(planes);
            if (!p || p.dtype().kind() != 'u' || p.dtype().itemsize() != 8)
                throw py::type_error("planes must be a uint64 array from pack_bitplanes, got " +
                                     (p ? "dtype " + std::string(py::str(p.dtype())) : "a non-array"));
            p = contiguous_as<uint64_t>(p, "planes");
            const int A = bitplane_arrays(e), D = bitplane_digits(bits, e, cell_bits);
            const int64_t W = bitplane_words(length, cell_bits);
            std::vector<py::ssize_t> expect_head;
            if (A == 2) expect_head.push_back(2);
            expect_head.push_back(D);
            const std::vector<py::ssize_t> shape(p.shape(), p.shape() + p.ndim());
            bool ok = shape.size() >= expect_head.size() + 1 && shape.back() == W;
            for (size_t i = 0; ok && i < expect_head.size(); ++i) ok = shape[i] == expect_head[i];
            if (!ok) {
                std::vector<py::ssize_t> want = expect_head;
                want.push_back(-1);
                want.push_back(W);
                std::string w = shape_str(want);
                w.replace(w.find("-1"), 2, "...");
                throw py::value_error("planes has shape " + shape_str(shape) + "; for bits=" +
                                      std::to_string(bits) + ", encoding='" + encoding +
                                      "', cell_bits=" + std::to_string(cell_bits) +
                                      " and length=" + std::to_string(length) +
                                      " it must be " + w);
            }
            std::vector<py::ssize_t> out_shape(shape.begin() + expect_head.size(), shape.end() - 1);
            out_shape.push_back(length);
            int64_t rows = 1;
            for (size_t i = 0; i + 1 < out_shape.size(); ++i) rows *= out_shape[i];
            py::array out = bits <= 8 ? py::array(py::array_t<int8_t>(out_shape))
                                      : py::array(py::array_t<int16_t>(out_shape));
            int8_t* o8 = bits <= 8 ? static_cast<int8_t*>(out.mutable_data()) : nullptr;
            int16_t* o16 = bits <= 8 ? nullptr : static_cast<int16_t*>(out.mutable_data());
            const uint64_t* src = static_cast<const uint64_t*>(p.data());
            int64_t bad;
            {
                py::gil_scoped_release release;
                bad = unpack_bitplanes(src, rows, length, bits, e, cell_bits, o8, o16, nt);
            }
            if (bad >= 0)
                throw py::value_error("planes do not hold a valid " + encoding + " code for bits=" +
                                      std::to_string(bits) + " at weight " +
                                      index_str("q", out_shape, bad));
            return out;
        },
        "planes"_a, "length"_a, "bits"_a, "encoding"_a = "differential", "cell_bits"_a = 1,
        "n_threads"_a = py::none());
}

}  // namespace hamq::bind
