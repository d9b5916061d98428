"""Golden numbers from MNSIM-2.0's own Python models (github.com/thu-nics/MNSIM-2.0, commit ca39ccb):
the data-dependent crossbar read energy (MNSIM/Hardware_Model/Crossbar.py: calculate_xbar_read_power
at Simulation_Level = 1, times calculate_xbar_read_latency) and the ADC energy per conversion
(MNSIM/Hardware_Model/ADC.py: calculate_ADC_energy), on small layers.

The SimConfig.ini used is MNSIM's default with one change, Simulation_Level = 1 (its "estimation"
level: the read power uses the stored levels and the applied read voltages; level 0 ignores the data).
Mapping (MNSIM's default Xbar_Polarity = 2, Device_Level = 2): a positive and a negative 256 x 256
crossbar, one bit per cell (LRS = 1), magnitude bits of |q| in separate columns, inputs applied one
bit per read (DAC_Choice 1: 1-bit DACs, read voltage 0.15 V for a 1, 0 V for a 0).

    python run_mnsim.py /path/to/MNSIM-2.0     (writes layers.npz and golden.json here)
"""
import configparser
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
W_BITS = A_BITS = 8


def layers(seed=7):
    rng = np.random.default_rng(seed)
    hi = (1 << (W_BITS - 1)) - 1
    k, n, o = 300, 3, 40
    x = rng.integers(0, 1 << A_BITS, size=(n, k))
    x[rng.random((n, k)) < 0.4] = 0
    x[2, 256:] = 0                                   # an idle second row tile for one vector
    dense = rng.integers(-hi, hi + 1, size=(o, k))
    lowhw = np.where(rng.random((o, k)) < 0.5, 0, rng.choice([-64, -8, -1, 1, 2, 32], size=(o, k)))
    return {"dense": (dense, x), "lowhw": (lowhw, x), "zero": (np.zeros((o, k), np.int64), x)}


def cells(w):
    """K x (out * 7) 0/1 matrices of the positive and negative crossbars, most significant bit first."""
    m = W_BITS - 1
    out = []
    for mag in (np.maximum(w, 0), np.maximum(-w, 0)):
        bits = (mag.T[:, :, None] >> np.arange(m - 1, -1, -1)) & 1      # (K, out, m)
        out.append(bits.reshape(w.shape[1], -1))
    return out


def main(mnsim_root):
    sys.path.insert(0, str(mnsim_root))
    from MNSIM.Hardware_Model.ADC import ADC
    from MNSIM.Hardware_Model.Crossbar import crossbar

    cfg = configparser.ConfigParser()
    cfg.read(Path(mnsim_root) / "SimConfig.ini", encoding="UTF-8")
    cfg.set("Algorithm Configuration", "Simulation_Level", "1")
    tmp = Path(tempfile.mkdtemp()) / "SimConfig.ini"
    with open(tmp, "w") as f:
        cfg.write(f)
    adc = ADC(str(tmp))
    adc.calculate_ADC_power()
    adc.calculate_ADC_latency()
    adc.calculate_ADC_energy()
    probe = crossbar(str(tmp))
    rows, cols = probe.xbar_row, probe.xbar_column
    data = layers()
    result = {"adc_energy_nj": adc.ADC_energy, "adc_precision": adc.ADC_precision, "xbar_size": [rows, cols],
              "device_resistance": probe.device_resistance, "read_voltage": probe.device_read_voltage,
              "layers": {}}
    for name, (w, x) in data.items():
        e_xbar, conversions, reads = 0.0, 0, 0
        for arr in cells(w):
            for r0 in range(0, arr.shape[0], rows):
                for c0 in range(0, arr.shape[1], cols):
                    block = arr[r0:r0 + rows, c0:c0 + cols]
                    for v in range(x.shape[0]):
                        for b in range(A_BITS):
                            bits = (x[v, r0:r0 + rows] >> b) & 1
                            xb = crossbar(str(tmp))                 # fresh: MNSIM keeps stale cells
                            xb.xbar_read_config(read_matrix=block.tolist(), read_vector=bits[:, None].tolist())
                            xb.calculate_xbar_read_power()
                            xb.calculate_xbar_read_latency()
                            xb.calculate_xbar_read_energy()
                            e_xbar += xb.xbar_read_energy
                            conversions += block.shape[1]
                            reads += 1
        result["layers"][name] = {"xbar_read_energy_nj": e_xbar, "conversions": conversions,
                                  "adc_energy_nj": conversions * adc.ADC_energy, "xbar_reads": reads,
                                  "xbar_read_latency_ns": xb.xbar_read_latency}
        print(name, result["layers"][name], flush=True)
    np.savez_compressed(HERE / "layers.npz", **{f"{k}_w": v[0] for k, v in data.items()},
                        **{f"{k}_x": v[1] for k, v in data.items()})
    (HERE / "golden.json").write_text(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
