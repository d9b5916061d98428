"""Write the layer traces DNN+NeuroSim V1.4 reads for the variants with other weight and input bit
widths than neurosim-1.3/'s (whose 8-bit traces the "w8a8" variant reads as they are), in the same
formats (see ../neurosim-1.3/make_traces.py), plus the same integers for hamqcore's tests.

Per variant (name: w<weight bits>a<input bits>): NetWork_<v>.csv and four layers as in neurosim-1.3:
  layer 1  a 3x3 convolution, 16 -> 128 channels on a 3x3 input (NeuroSim's floorplanner needs it;
           not compared)
  layer 2  "dense":  K = 200 inputs, 40 outputs, random weights, 5 vectors (one idle, one whose
           second row tile is idle)
  layer 3  "lowhw":  the same shape, every offset code of Hamming weight <= 1
  layer 4  "zero":   every weight 0
The CSVs are written next to this file (not committed: rerun this, it is deterministic); the
integers go to layers.npz.

Run:  python make_traces.py
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = {"w6a4": (6, 4), "w3a1": (3, 1)}


def layers(w_bits, a_bits, seed=2026):
    rng = np.random.default_rng(seed)
    half = 1 << (w_bits - 1)
    out = {"conv": (rng.integers(-half, half, size=(128, 144)), rng.integers(0, 1 << a_bits, size=(1, 144)))}
    k, n, o = 200, 5, 40
    x = rng.integers(0, 1 << a_bits, size=(n, k))
    x[rng.random((n, k)) < 0.4] = 0
    x[3] = 0
    x[4, 128:] = 0
    out["dense"] = (rng.integers(-half, half, size=(o, k)), x)
    codes = np.concatenate([[0], 1 << np.arange(w_bits)])
    out["lowhw"] = (rng.choice(codes, size=(o, k)) - half, x)
    out["zero"] = (np.zeros((o, k), np.int64), x)
    return out


def write():
    arrays = {}
    for v, (wb, ab) in VARIANTS.items():
        net = [[3, 3, 16, 3, 3, 128, 0, 1]] + [[5, 1, 200, 1, 1, 40, 0, 1]] * 3
        (HERE / f"NetWork_{v}.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in net))
        half = 1 << (wb - 1)
        for name, (w, x) in layers(wb, ab).items():
            np.savetxt(HERE / f"weight_{v}_{name}.csv", (w.T / half), delimiter=",", fmt="%.10g")
            bits = (x[:, None, :] >> np.arange(ab - 1, -1, -1)[None, :, None]) & 1
            np.savetxt(HERE / f"input_{v}_{name}.csv", bits.reshape(-1, x.shape[1]).T, delimiter=",", fmt="%d")
            arrays[f"{v}_{name}_w"], arrays[f"{v}_{name}_x"] = w, x
    np.savez_compressed(HERE / "layers.npz", **arrays)


if __name__ == "__main__":
    write()
