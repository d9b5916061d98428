#include "common.hpp"
#include "hamqcore/hamming.hpp"

namespace hamq::bind {

void bind_hamming(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "hamming_weight",
        [](const py::handle& q, int bits, const std::string& encoding,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            const int nt = threads_arg(n_threads);
            const IntArray a = int_array(q, "q");
            py::array_t<uint8_t> out(a.shape());
            uint8_t* o = out.mutable_data();
            int64_t bad;
            {
                py::gil_scoped_release release;
                bad = hamming_weight(a.type, a.arr.data(), a.size(), bits, e, o, nt);
            }
            if (bad >= 0) throw_out_of_range("q", a, bad, bits);
            return out;
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());

    m.def(
        "total_hamming_weight",
        [](const py::handle& q, int bits, const std::string& encoding,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            const int nt = threads_arg(n_threads);
            const IntArray a = int_array(q, "q");
            uint64_t total = 0;
            int64_t bad;
            {
                py::gil_scoped_release release;
                bad = total_hamming_weight(a.type, a.arr.data(), a.size(), bits, e, &total, nt);
            }
            if (bad >= 0) throw_out_of_range("q", a, bad, bits);
            return py::int_(total);
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());

    m.def(
        "hw_histogram",
        [](const py::handle& q, int bits, const std::string& encoding,
           std::optional<int> n_threads) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            const int nt = threads_arg(n_threads);
            const IntArray a = int_array(q, "q");
            py::array_t<int64_t> hist(py::ssize_t(bits + 1));
            int64_t* h = hist.mutable_data();
            int64_t bad;
            {
                py::gil_scoped_release release;
                bad = hw_histogram(a.type, a.arr.data(), a.size(), bits, e, h, nt);
            }
            if (bad >= 0) throw_out_of_range("q", a, bad, bits);
            return hist;
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());
}

}  // namespace hamq::bind
