"""Write the networks whose chip-level energy DNN+NeuroSim V1.3 reports (run_neurosim.sh), as the
traces its wrapper writes (Inference_pytorch/utee/hook.py formats), plus the same layers as integers
for hamqcore's tests (layers.npz, networks.json).

Every layer is written as NeuroSim reads it: NetWork_<net>.csv rows are IFM_H, IFM_W, IFM_C, K_H, K_W,
OFM_C, maxpool, stride; a weight trace holds K = K_H K_W IFM_C rows x OFM_C columns of q / 2^(b-1)
(Chip.cpp LoadInWeightData: offset code q + 2^(b-1)); an input trace holds K rows and one 0/1 column
per input vector and bit (most significant first), the vectors being the convolution's output
positions (im2col).

The layers are chosen to take every path of NeuroSim's conventional mapping (Tile.cpp
TileCalculatePerformance, ProcessingUnit.cpp ProcessingUnitCalculatePerformance): a layer duplicated
across PEs and inside them, one duplicated across PEs only, one over two tile rows (the tiles'
accumulation and the chip's), the no-duplication path and layers followed by max pooling, at two tile sizes (NeuroSim's floorplanner
picks 512 x 512 tiles of 256 x 256 PEs for "small", "cb4" and "cb1", and 1024 x 1024 tiles of 512 x 512
PEs for "wide"), with 1-, 2- and 4-bit cells, 2 to 5 columns per weight and 4-, 6- and 8-bit inputs,
and under NeuroSim's HP roadmap ("hp").

Run:  python make_traces.py   (deterministic)
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# name: cell bits, weight bits, input bits, [roadmap: "hp" for Param.cpp deviceroadmap = 1, else its LSTP
# default], layers [(IFM_H, IFM_W, IFM_C, K_H, K_W, OFM_C, maxpool, stride), ...]
NETWORKS = {
    "small": dict(cell_bits=2, w_bits=8, a_bits=8, layers=[
        (4, 4, 8, 3, 3, 32, 1, 1), (5, 1, 200, 1, 1, 40, 0, 1), (2, 2, 800, 1, 1, 100, 0, 1),
        (3, 1, 100, 1, 1, 100, 0, 1), (2, 1, 64, 1, 1, 16, 0, 1)]),
    "wide": dict(cell_bits=2, w_bits=8, a_bits=8, layers=[
        (3, 3, 16, 3, 3, 200, 0, 1), (2, 2, 300, 1, 1, 150, 1, 1), (1, 1, 1100, 1, 1, 30, 0, 1),
        (2, 1, 200, 1, 1, 50, 0, 1)]),
    "cb4": dict(cell_bits=4, w_bits=8, a_bits=6, layers=[
        (6, 6, 32, 3, 3, 200, 1, 1), (2, 2, 1300, 1, 1, 60, 0, 1), (4, 1, 96, 1, 1, 24, 0, 1)]),
    "cb1": dict(cell_bits=1, w_bits=5, a_bits=4, layers=[
        (3, 3, 20, 3, 3, 70, 0, 1), (2, 2, 900, 1, 1, 40, 0, 1), (3, 1, 50, 1, 1, 30, 0, 1)]),
    "hp": dict(cell_bits=2, w_bits=8, a_bits=8, roadmap="hp", layers=[
        (4, 4, 8, 3, 3, 32, 1, 1), (2, 2, 800, 1, 1, 100, 0, 1), (3, 1, 100, 1, 1, 100, 0, 1)]),
    # NeuroSim's re-added PEs (hamqcore/chip.py, difference 2): 600 rows over two tile rows, no
    # duplication; the second tile's 88 rows leave its second PE row unused, and NeuroSim's
    # TileCalculatePerformance adds the last PE's energies once more for each of its two PEs
    "skip": dict(cell_bits=2, w_bits=8, a_bits=8, layers=[(2, 2, 600, 1, 1, 100, 0, 1)]),
}


def vectors(row):
    h, w, c, kh, kw, n, pool, stride = row
    return ((h - kh + 1) // stride) * ((w - kw + 1) // stride)


def layers(seed=2026):
    rng = np.random.default_rng(seed)
    out = {}
    for net, spec in NETWORKS.items():
        half = 1 << (spec["w_bits"] - 1)
        for i, row in enumerate(spec["layers"]):
            k, n, v = row[2] * row[3] * row[4], row[5], vectors(row)
            x = rng.integers(0, 1 << spec["a_bits"], size=(v, k))
            x[rng.random((v, k)) < 0.4] = 0          # ReLU-like sparsity
            out[f"{net}{i}"] = (rng.integers(-half, half, size=(n, k)), x)
    return out


def write():
    data = layers()
    for net, spec in NETWORKS.items():
        (HERE / f"NetWork_{net}.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in spec["layers"]))
        half, a_bits = 1 << (spec["w_bits"] - 1), spec["a_bits"]
        for i in range(len(spec["layers"])):
            w, x = data[f"{net}{i}"]
            np.savetxt(HERE / f"weight_{net}{i}.csv", (w.T / half), delimiter=",", fmt="%.10g")
            bits = (x[:, None, :] >> np.arange(a_bits - 1, -1, -1)[None, :, None]) & 1   # (N, bits, K)
            np.savetxt(HERE / f"input_{net}{i}.csv", bits.reshape(-1, x.shape[1]).T, delimiter=",", fmt="%d")
    np.savez_compressed(HERE / "layers.npz", **{f"{k}_w": v[0] for k, v in data.items()},
                        **{f"{k}_x": v[1] for k, v in data.items()})
    (HERE / "networks.json").write_text(json.dumps({"networks": NETWORKS}, indent=1) + "\n")


if __name__ == "__main__":
    write()
