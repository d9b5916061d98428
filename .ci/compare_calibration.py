"""Calibration's two implementations on a demo's checkpoints: the references ``calibrate_adc`` chooses
from the C++ kernel's histograms and from the dense model's (hamqcore/readout.py), per checkpoint,
under the protocol's primary configuration and calibration inputs (README "Calibration from the
popcounts").

    python .ci/compare_calibration.py DEMO_OUT [DEMO_OUT ...]

Prints one line per checkpoint ("same" or the layers that differ) and exits non-zero when any differs.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def main(dirs) -> int:
    import torch

    import hamqcore.energy as energy
    from hamqcore.study import experiments
    from hamqcore.study.protocol import tensors
    from hamqcore.study.settings import DEMO, PROTOCOL, PROTOCOL_SCALE
    from hamqcore.study.train import load_checkpoint

    torch.set_num_threads(1)
    fast_read = energy.read_module

    def dense_read(m, x, config, name="", references=None, histograms=None, n_threads=None):
        if histograms is None:
            return fast_read(m, x, config, name, references, None, n_threads)
        keep, energy.fast_path = energy.fast_path, (lambda c: False)
        try:
            return fast_read(m, x, config, name, references, histograms, n_threads)
        finally:
            energy.fast_path = keep

    base = experiments.accounting(PROTOCOL["primary"])
    checkpoints = sorted(p for d in dirs for p in Path(d).glob("*/seed*/*/checkpoint.pt"))
    data, bad = {}, 0
    for ck in checkpoints:
        name = ck.parts[-4]
        if name not in data:
            settings = dict(DEMO[name], **PROTOCOL_SCALE[name], seed=0)
            data[name] = tensors(experiments._protocol_data(settings, PROTOCOL)[1].val, 0,
                                 PROTOCOL["calibration_inputs"])[0]
        model = load_checkpoint(str(ck))[0]
        t0 = time.perf_counter()
        fast = energy.calibrate_adc(model, data[name], base)
        t1 = time.perf_counter()
        energy.read_module = dense_read
        try:
            dense = energy.calibrate_adc(model, data[name], base)
        finally:
            energy.read_module = fast_read
        t2 = time.perf_counter()
        diff = [k for k in dense.full_scale if fast.full_scale.get(k) != dense.full_scale[k]]
        bad += bool(diff)
        print(f"{ck}: {'same' if not diff else 'DIFFERENT in ' + ', '.join(diff)} "
              f"(kernel {t1 - t0:.2f} s, dense {t2 - t1:.2f} s)", flush=True)
    print(f"{len(checkpoints)} checkpoints, {bad} with different references")
    return 1 if bad or not checkpoints else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
