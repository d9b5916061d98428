// Crossbar::simulate, stage 2: the stored weights (bit-planes, statistics, complement coding) and
// what each column's periphery does with them (crossbar_stages.hpp).
#include <algorithm>

#include "crossbar_stages.hpp"
#include "kernel_table.hpp"
#include "threading.hpp"

namespace hamq::xbar {

namespace {

// One output group's digits of one row block into the planes, with their statistics.
template <class W>
void pack_group(const Plan& p, StoredWeights& sw, int64_t g, const Block& bl, const W* wblock) {
    uint64_t* dst = sw.wp.data() + (bl.tc * p.WPT + bl.word) * p.ld + g * p.cpg;
    const int64_t n = bl.r1 - bl.r0;
    int32_t q[64] = {0};
    for (int64_t i = 0; i < n; ++i) q[i] = int32_t(wblock[i]);
    uint64_t planes[kMaxPlanes];
    active_kernels().digit_planes(q, p.rules.data(), int(p.cpg), p.cb, planes);
    const uint64_t rowmask = n == 64 ? ~uint64_t(0) : (uint64_t(1) << n) - 1;  // rows past n hold no cell
    for (int64_t k = 0; k < p.cpg; ++k) {
        uint64_t* col = dst + k;
        uint64_t any = 0, all = ~uint64_t(0);
        int32_t sum = 0;
        for (int j = 0; j < p.cb; ++j) {
            const uint64_t plane = planes[k * p.cb + j] & rowmask;
            col[j * p.ncols] = plane;
            any |= plane;
            all &= plane;
            sum += popcount64(plane) << j;
        }
        const size_t si = size_t(bl.tc * p.ncols + g * p.cpg + k);
        sw.st_on[si] += popcount64(any);
        sw.st_sum[si] += sum;
        sw.st_full[si] += popcount64(all);
    }
}

// Complement: per physical column (array row tile, kernel column), stored inverted when that leaves
// fewer ON cells; its planes are flipped on the used rows.
void complement(const Plan& p, StoredWeights& sw, CrossbarResult& r) {
    sw.inverted.assign(size_t(p.T * p.ncols), 0);
    for (int64_t t = 0; t < p.TA; ++t)
        for (int64_t kc = 0; kc < p.ncols; ++kc) {
            int64_t on = 0, on_inv = 0;
            for (int64_t tc = 0; tc < p.T; ++tc)
                if (p.tc_tile[size_t(tc)] == t) {
                    const size_t si = size_t(tc * p.ncols + kc);
                    on += sw.st_on[si];
                    on_inv += p.tc_rows[size_t(tc)] - sw.st_full[si];
                }
            if (on_inv >= on) continue;
            r.inverted_columns += p.copies(kc);
            for (int64_t tc = 0; tc < p.T; ++tc) {
                if (p.tc_tile[size_t(tc)] != t) continue;
                const size_t si = size_t(tc * p.ncols + kc);
                const int32_t n = int32_t(p.tc_rows[size_t(tc)]);
                sw.inverted[si] = 1;
                const int32_t on_before = sw.st_on[si];
                sw.st_on[si] = n - sw.st_full[si];
                sw.st_full[si] = n - on_before;
                sw.st_sum[si] = n * int32_t(p.dmask) - sw.st_sum[si];
                for (int64_t wd = 0; wd < p.WPT; ++wd) {
                    const int64_t rows_here = std::min<int64_t>(64, n - wd * 64);
                    if (rows_here <= 0) break;
                    const uint64_t rowmask = rows_here == 64 ? ~uint64_t(0) : (uint64_t(1) << rows_here) - 1;
                    uint64_t* col = sw.wp.data() + (tc * p.WPT + wd) * p.ld + kc;
                    for (int j = 0; j < p.cb; ++j) col[j * p.ncols] ^= rowmask;
                }
            }
        }
}

}  // namespace

StoredWeights pack_weights(const Plan& p, CrossbarResult& r) {
    // Column kc holds its digit's cb bit-planes. ON cells = nonzero digits.
    StoredWeights sw;
    sw.wp.assign(size_t(p.T * p.WPT * p.ld), 0);
    sw.st_on.assign(size_t(p.T * p.ncols), 0);
    sw.st_sum.assign(size_t(p.T * p.ncols), 0);
    sw.st_full.assign(size_t(p.T * p.ncols), 0);
    const CrossbarLayer& L = p.L;
    if (!L.floor) {
        visit_int(L.w_type, L.w, [&](auto* w) {
#pragma omp parallel for num_threads(threads_for(L.out * p.K, p.n_threads)) schedule(static)
            for (int64_t o = 0; o < L.out; ++o)
                for (const Block& bl : p.blocks) pack_group(p, sw, o, bl, w + o * p.K + bl.r0);
            return 0;
        });
        if (p.ref) {
            const std::vector<int16_t> zeros(size_t(p.R > 64 ? p.R : 64), 0);  // the reference weight, q = 0
            for (const Block& bl : p.blocks) pack_group(p, sw, L.out, bl, zeros.data());
        }
    }
    if (p.c.complement) complement(p, sw, r);
    // ON cells (physical: the reference group once per array column tile).
    r.on_cells = 0;
    for (int64_t tc = 0; tc < p.T; ++tc)
        for (int64_t kc = 0; kc < p.ncols; ++kc) r.on_cells += int64_t(sw.st_on[size_t(tc * p.ncols + kc)]) * p.copies(kc);
    return sw;
}

Columns plan_columns(const Plan& p, const StoredWeights& sw) {
    const CrossbarConfig& c = p.c;
    Columns cols;
    cols.per_column = c.adc_resolution == AdcResolution::PerColumn;
    cols.levels_fixed = 1 << c.adc_bits;
    const int64_t n = p.T * p.ncols;
    cols.skip.assign(size_t(n), 0);
    cols.levels.assign(size_t(n), cols.levels_fixed);
    // Per (group, column): skipped (empty), and the levels of its conversions: per-column resolution
    // gives a column the fewest bits (at least 1) whose levels cover its largest digit sum.
    for (int64_t i = 0; i < n; ++i) {
        if (c.skip_empty && sw.st_on[size_t(i)] == 0) {
            cols.skip[size_t(i)] = 1;
            continue;
        }
        if (cols.per_column) {
            int bits = 1;
            while (bits < c.adc_bits && (int64_t(1) << bits) - 1 < int64_t(sw.st_sum[size_t(i)])) ++bits;
            cols.levels[size_t(i)] = 1 << bits;
        }
    }
    // Mux cycles of every array read (conversion group tc, column tile, array type): the sense amp of
    // m = cols_per_adc adjacent columns reads them in turn, local column c in cycle c % m. With
    // skip_empty only the cycles holding a converted column run, and a read with none is not done.
    const int64_t m = p.m;
    std::vector<uint8_t> cycle_on(size_t(p.T * p.narr * m), c.skip_empty ? 0 : 1);
    if (c.skip_empty)
        for (int64_t tc = 0; tc < p.T; ++tc)
            for (int64_t kc = 0; kc < p.ncols; ++kc) {
                if (cols.skip[size_t(tc * p.ncols + kc)]) continue;
                p.for_copies(kc, [&](int64_t a, int64_t local) { cycle_on[size_t((tc * p.narr + a) * m + local % m)] = 1; });
            }
    cols.cycles.assign(size_t(p.T * p.narr), 0);
    for (int64_t i = 0; i < p.T * p.narr; ++i)
        for (int64_t j = 0; j < m; ++j) cols.cycles[size_t(i)] += cycle_on[size_t(i * m + j)];
    return cols;
}

}  // namespace hamq::xbar
