#include "common.hpp"
#include "hamqcore/hamming.hpp"

namespace hamq::bind {

namespace {

struct HwArgs {
    IntArray q;
    int bits;
    Encoding encoding;
    int n_threads;
};

HwArgs hw_args(const py::handle& q, int bits, const std::string& encoding,
               const std::optional<int>& n_threads) {
    check_bits(bits);
    const Encoding e = parse_encoding(encoding);
    const int nt = threads_arg(n_threads);
    return {int_array(q, "q"), bits, e, nt};
}

// Runs kernel(args) -> first out-of-range index (or -1) without the GIL; raises on a bad value.
template <class Kernel>
void run_hw(const HwArgs& a, Kernel&& kernel) {
    int64_t bad;
    {
        py::gil_scoped_release release;
        bad = kernel(a);
    }
    if (bad >= 0) throw_out_of_range("q", a.q, bad, a.bits);
}

}  // namespace

void bind_hamming(py::module_& m) {
    m.attr("ENCODINGS") = name_tuple(kEncodings);
    m.attr("MIN_BITS") = kMinBits;
    m.attr("MAX_BITS") = kMaxBits;
    using namespace pybind11::literals;
    m.def(
        "hamming_weight",
        [](const py::handle& q, int bits, const std::string& encoding, std::optional<int> n_threads) {
            const HwArgs a = hw_args(q, bits, encoding, n_threads);
            py::array_t<uint8_t> out(a.q.shape());
            uint8_t* o = out.mutable_data();
            run_hw(a, [&](const HwArgs& x) {
                return hamming_weight(x.q.type, x.q.arr.data(), x.q.size(), x.bits, x.encoding, o, x.n_threads);
            });
            return out;
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());

    m.def(
        "total_hamming_weight",
        [](const py::handle& q, int bits, const std::string& encoding, std::optional<int> n_threads) {
            const HwArgs a = hw_args(q, bits, encoding, n_threads);
            uint64_t total = 0;
            run_hw(a, [&](const HwArgs& x) {
                return total_hamming_weight(x.q.type, x.q.arr.data(), x.q.size(), x.bits, x.encoding, &total,
                                            x.n_threads);
            });
            return py::int_(total);
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());

    m.def(
        "hw_histogram",
        [](const py::handle& q, int bits, const std::string& encoding, std::optional<int> n_threads) {
            const HwArgs a = hw_args(q, bits, encoding, n_threads);
            py::array_t<int64_t> hist(py::ssize_t(a.bits + 1));
            int64_t* h = hist.mutable_data();
            run_hw(a, [&](const HwArgs& x) {
                return hw_histogram(x.q.type, x.q.arr.data(), x.q.size(), x.bits, x.encoding, h, x.n_threads);
            });
            return hist;
        },
        "q"_a, "bits"_a, "encoding"_a = "differential", "n_threads"_a = py::none());

    m.def(
        "level_codes",
        [](int bits, const std::string& encoding) {
            check_bits(bits);
            const Encoding e = parse_encoding(encoding);
            const int64_t hi = level_max(bits);
            py::array_t<uint32_t> codes(py::ssize_t(2 * hi + 1));
            uint32_t* c = codes.mutable_data();
            for (int64_t k = -hi; k <= hi; ++k) c[k + hi] = uint32_t(encode(k, bits, e));
            return codes;
        },
        "bits"_a, "encoding"_a = "differential");
}

}  // namespace hamq::bind
