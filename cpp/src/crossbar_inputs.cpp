// Crossbar::simulate, stage 3: the inputs into bit-planes, one plane per read pulse
// (crossbar_stages.hpp).
#include "crossbar_stages.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

namespace hamq::xbar {

Inputs pack_inputs(const Plan& p) {
    const CrossbarLayer& L = p.L;
    const int P = p.P;
    const int64_t T = p.T, WPT = p.WPT, K = p.K;
    Inputs in;
    in.xp.assign(size_t(L.n * T * P * WPT), 0);  // [N][T][P][WPT]
    in.amask = (uint64_t(1) << P) - 1;
    const auto transpose = active_kernels().transpose_bits;
    visit_int(L.x_type, L.x, [&](auto* x) {
#pragma omp parallel for num_threads(threads_for(L.n * K, p.n_threads)) schedule(static)
        for (int64_t n = 0; n < L.n; ++n) {
            uint16_t codes[64];
            uint64_t planes[16];
            for (const Block& bl : p.blocks) {
                for (int i = 0; i < 64; ++i) codes[i] = 0;
                for (int64_t row = bl.r0; row < bl.r1; ++row)
                    codes[row - bl.r0] = uint16_t(uint64_t(int64_t(x[n * K + row])) & in.amask);
                transpose(codes, P, planes);
                for (int pl = 0; pl < P; ++pl) in.xp[size_t(((n * T + bl.tc) * P + pl) * WPT + bl.word)] = planes[pl];
            }
        }
        return 0;
    });
    // The reads of each conversion group by their driven rows (vector and pulse); their sums, and the
    // idle reads (no driven row).
    const int64_t H = p.RC + 1;
    in.driven_hist.assign(size_t(T * H), 0);
    for (int64_t n = 0; n < L.n; ++n)
        for (int64_t tc = 0; tc < T; ++tc)
            for (int pl = 0; pl < P; ++pl) {
                int nd = 0;
                for (int64_t wd = 0; wd < WPT; ++wd) nd += popcount64(in.xp[size_t(((n * T + tc) * P + pl) * WPT + wd)]);
                ++in.driven_hist[size_t(tc * H + nd)];
            }
    in.driven_tc.assign(size_t(T), 0);
    in.idle_tc.assign(size_t(T), 0);
    for (int64_t tc = 0; tc < T; ++tc) {
        for (int64_t nd = 1; nd < H; ++nd) in.driven_tc[size_t(tc)] += nd * in.driven_hist[size_t(tc * H + nd)];
        in.idle_tc[size_t(tc)] = in.driven_hist[size_t(tc * H)];
    }
    return in;
}

}  // namespace hamq::xbar
