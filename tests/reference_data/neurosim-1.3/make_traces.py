"""Write the small layer traces that DNN+NeuroSim V1.3 reads (its wrapper's CSV formats, see
Inference_pytorch/utee/hook.py), plus the same layers as integers for hamqcore's tests.

Network (NetWork.csv rows: IFM_H, IFM_W, IFM_C, K_H, K_W, OFM_C, maxpool, stride):
  layer 1  a 3x3 convolution, 16 -> 64 channels on a 3x3 input (NeuroSim's floorplanner needs a
           conv layer that it maps with its "novel mapping": 9 kernel positions, >= 128 rows and
           >= 256 columns); only layers 2-4 are compared
  layer 2  "dense":  K = 200 inputs, 40 outputs, random 8-bit weights
  layer 3  "lowhw":  the same shape, every offset code of Hamming weight <= 1
  layer 4  "zero":   the same shape, every weight 0 (offset code 2^(b-1))
The "cb4" variant (4-bit cells) reads NetWork_wide.csv / weight_conv_wide.csv: layer 1 with 128
outputs (64 more rows from a second generator, so layers 2-4 are the same integers): with 4-bit
cells 64 outputs fill only 128 columns, and NeuroSim's floorplanner stops with "SubArray Size is too
large" and then crashes.
Layers 2-4 are 1x1 convolutions on a 5x1 input, so each is read by N = 5 input vectors.
Weight traces hold q / 2^(b-1) (NeuroSim's Chip.cpp LoadInWeightData maps f in [-1, 1) to the
offset code round(2^(b-1) (f + 1)) = q + 2^(b-1)); input traces hold one 0/1 column per vector and
input bit (most significant first), K rows.

Run:  python make_traces.py   (deterministic; writes the CSVs and layers.npz here)
"""
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
W_BITS = A_BITS = 8


def layers(seed=2026):
    rng = np.random.default_rng(seed)
    half = 1 << (W_BITS - 1)
    out = {}
    # layer 1: conv 3x3, 16 -> 64 channels on a 3x3 input: K = 144, one vector
    out["conv"] = (rng.integers(-half, half, size=(64, 144)), rng.integers(0, 1 << A_BITS, size=(1, 144)))
    k, n, o = 200, 5, 40
    x = rng.integers(0, 1 << A_BITS, size=(n, k))
    x[rng.random((n, k)) < 0.4] = 0          # ReLU-like sparsity
    x[3] = 0                                 # one vector drives no row at all (idle columns)
    x[4, 128:] = 0                           # ... and one whose second row tile is idle
    out["dense"] = (rng.integers(-half, half, size=(o, k)), x)
    codes = np.concatenate([[0], 1 << np.arange(W_BITS)])          # offset codes of HW <= 1
    out["lowhw"] = (rng.choice(codes, size=(o, k)) - half, x)
    out["zero"] = (np.zeros((o, k), np.int64), x)
    return out


def write():
    net = [[3, 3, 16, 3, 3, 64, 0, 1]] + [[5, 1, 200, 1, 1, 40, 0, 1]] * 3
    (HERE / "NetWork.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in net))
    data = layers()
    half = 1 << (W_BITS - 1)
    for name, (w, x) in data.items():
        # weight trace: K rows x out columns of q / 2^(b-1)
        np.savetxt(HERE / f"weight_{name}.csv", (w.T / half), delimiter=",", fmt="%.10g")
        # input trace: K rows x (vectors * bits) columns, bit b of vector v at column v*bits + (bits-1-b)
        bits = (x[:, None, :] >> np.arange(A_BITS - 1, -1, -1)[None, :, None]) & 1   # (N, bits, K)
        np.savetxt(HERE / f"input_{name}.csv", bits.reshape(-1, x.shape[1]).T, delimiter=",", fmt="%d")
    wide = np.concatenate([data["conv"][0], np.random.default_rng(2027).integers(-half, half, size=(64, 144))])
    np.savetxt(HERE / "weight_conv_wide.csv", (wide.T / half), delimiter=",", fmt="%.10g")
    (HERE / "NetWork_wide.csv").write_text("".join(",".join(map(str, r)) + "\n"
                                                   for r in [[3, 3, 16, 3, 3, 128, 0, 1]] + net[1:]))
    np.savez_compressed(HERE / "layers.npz", **{f"{k}_w": v[0] for k, v in data.items()},
                        **{f"{k}_x": v[1] for k, v in data.items()})
    (HERE / "layers.json").write_text(json.dumps({"order": list(data), "w_bits": W_BITS, "a_bits": A_BITS}))


if __name__ == "__main__":
    write()
