"""Run DNN+NeuroSim V1.3's own Python inference layers (Inference_pytorch/modules/
quantization_cpu_np_infer.py, QLinear and QConv2d with inference=1, model='VGG8': the bit-serial,
digit-sliced, subarray-partitioned path with its ADC, utee/wage_quantizer.py LinearQuantizeOut) on
small committed layers, and record every partial-sum reading its ADC makes, for
tests/test_readout.py (adc_reference="minmax", readout="conductance").

Its code is used as published (commit 388f421) with two textual substitutions, so that it imports and
runs on a CPU-only torch: `from torch._jit_internal import weak_script_method` (gone from torch) becomes
an identity decorator, and the `device='cuda'` of its variation draw (vari = 0 here) becomes 'cpu'.
Tensors are float64 (NeuroSim's arithmetic in double precision, so that no floor in LinearQuantizeOut
lands on the other side of a level because of float32 rounding). Each layer's scale (wage_init_) is set
to 1 so that its weight quantizer keeps the given 8-bit weights q / 128.

Cases: a Linear layer (K = 256: two 128-row subarrays, 12 outputs, 3 inputs) and a 1x1 Conv2d
(256 -> 8 channels on a 2 x 3 x 3 input: 18 vectors), cellBit 1 and 2, ADCprecision 3..6,
onoffratio 150 (hamqcore's preset: 6 kOhm / 900 kOhm). Retention (wage_quantizer.Retention): the same
layers with ADCprecision 5 under fixed-direction drift (detect=1; t = 1e4, v = 0.02) towards target
0, 0.5 and 1 (keys ..._ret<target>): deterministic, so hamqcore's drawn-once cells are NeuroSim's.

Run:  NEUROSIM_REPO=/path/to/DNN_NeuroSim_V1.3 python make_golden.py    (writes golden.npz here)
"""
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ["NEUROSIM_REPO"]) / "Inference_pytorch"
ONOFF = 150
W_BITS = A_BITS = 8


def neurosim_modules():
    sys.path.insert(0, str(ROOT))
    from utee import wage_quantizer  # noqa: F401  (NeuroSim's own, unmodified)
    src = (ROOT / "modules" / "quantization_cpu_np_infer.py").read_text()
    src = src.replace("from torch._jit_internal import weak_script_method", "weak_script_method = lambda f: f")
    src = src.replace("device='cuda'", "device='cpu'")
    mod = types.ModuleType("neurosim_infer")
    exec(compile(src, "quantization_cpu_np_infer.py", "exec"), mod.__dict__)
    return mod, sys.modules["utee.wage_quantizer"]


RETENTION_T, RETENTION_V, RETENTION_TARGETS = 1e4, 0.02, (0.0, 0.5, 1.0)


def run(kind, cell_bits, adc_bits, q, a, mod, wq, retention=None):
    torch.manual_seed(0)
    t, v, detect, target = (0, 0, 0, 0) if retention is None else (RETENTION_T, RETENTION_V, 1, retention)
    common = dict(wl_input=A_BITS, wl_weight=W_BITS, inference=1, onoffratio=ONOFF, cellBit=cell_bits,
                  subArray=128, ADCprecision=adc_bits, vari=0.0, t=t, v=v, detect=detect, target=target,
                  model="VGG8")
    if kind == "linear":
        layer = mod.QLinear(q.shape[1], q.shape[0], **common)
        layer.weight.data = torch.from_numpy(q / 128.0)
        x = torch.from_numpy(a / 255.0)
    else:
        layer = mod.QConv2d(q.shape[1], q.shape[0], 1, **common)
        layer.weight.data = torch.from_numpy(q / 128.0).reshape(q.shape[0], q.shape[1], 1, 1)
        x = torch.from_numpy(a / 255.0)
    layer.scale = 1.0
    calls = []
    orig = wq.LinearQuantizeOut

    def record(t, bits):
        y = orig(t, bits)
        calls.append(y.detach().numpy().copy())
        return y

    wq.LinearQuantizeOut = record
    try:
        with torch.no_grad():
            layer(x)
    finally:
        wq.LinearQuantizeOut = orig
    weight = wq.Q(torch.from_numpy(q / 128.0), W_BITS)
    codes = torch.round((2 ** W_BITS - 1) / 2 * (weight + 1)).numpy()   # NeuroSim's X_decimal
    return codes, np.stack(calls[0::2]), np.stack(calls[1::2])          # weight columns, dummy columns


def main():
    mod, wq = neurosim_modules()
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(2026)
    out = {}
    layers = {"linear": (rng.integers(-128, 128, size=(12, 256)), rng.integers(0, 256, size=(3, 256))),
              "conv": (rng.integers(-128, 128, size=(8, 256)), rng.integers(0, 256, size=(2, 256, 3, 3)))}
    for kind, (q, a) in layers.items():
        a = a.copy()
        a[rng.random(a.shape) < 0.3] = 0                                  # ReLU-like zeros
        out[f"{kind}_q"], out[f"{kind}_a"] = q, a
        for cb in (1, 2):
            for bits in (3, 4, 5, 6):
                codes, parts, dummy = run(kind, cb, bits, q, a, mod, wq)
                out[f"{kind}_codes"] = codes
                out[f"{kind}_cb{cb}_adc{bits}"] = parts
                out[f"{kind}_cb{cb}_adc{bits}_dummy"] = dummy
            for target in RETENTION_TARGETS:
                _, parts, _ = run(kind, cb, 5, q, a, mod, wq, retention=target)
                out[f"{kind}_cb{cb}_adc5_ret{target}"] = parts
    np.savez_compressed(HERE / "golden.npz", **out)


if __name__ == "__main__":
    main()
