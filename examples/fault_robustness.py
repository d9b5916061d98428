"""Device variation and stuck cells on the demo's chosen models (README "Variation and faults").

A post-hoc check, not part of the study's protocol (no choice is made from it): for one seed of a
finished ``hamq demo`` run, the baseline and every method's chosen point are read on the primary
accounting's crossbar (hamqcore.study.settings.PROTOCOL["primary"], the references calibrated on
training inputs as the protocol calibrates them) with nominal cells, conductance variation and
stuck-at-ON / OFF cells, all drawn from one seed: the energy per inference (the energy path charges
the drawn cells) and the crossbar accuracy on the first test inputs; also retention drift
(NeuroSim's Retention, random or towards level 0).

    python examples/fault_robustness.py DEMO_OUT [--task resnet18] [--seed 0] [--inputs 200]

About 3 minutes per model on 2 cores (ResNet-18 of the demo, 200 inputs).
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import calibrate_adc, crossbar_accuracy, estimate_energy
from hamqcore.study.data import load
from hamqcore.study.settings import PROTOCOL
from hamqcore.study.train import load_checkpoint

# retention drift: NeuroSim's Retention with t^v = 1e4^0.02 = 1.20 (a cell's level d becomes
# (d + 1) 1.20^(+-1) - 1): random signs (its detect=0), or every cell towards level 0 (detect=1,
# target 0: conductances decay). Illustrative values: NeuroSim's defaults (t = v = 0) drift nothing.
CONDITIONS = {"nominal": {}, "g_variation=0.1": dict(g_variation=0.1), "stuck_on=0.1%": dict(stuck_on=0.001),
              "stuck_on=1%": dict(stuck_on=0.01), "stuck_off=1%": dict(stuck_off=0.01),
              "drift random": dict(retention_t=1e4, retention_v=0.02),
              "drift to 0": dict(retention_t=1e4, retention_v=0.02, retention_target=0.0)}
ENERGY_INPUTS = 16          # test inputs the energy is measured on
CALIBRATION_INPUTS = 32     # training inputs the references are calibrated on


def primary(**extra) -> CrossbarConfig:
    spec = dict(PROTOCOL["primary"])
    return CrossbarConfig.preset(spec.pop("preset"), **spec, seed=1, **extra)


def measure(demo_out, task: str = "resnet18", seed: str = "0", inputs: int = 200, log=print, methods=None,
            conditions=tuple(CONDITIONS)):
    """{model: {condition: (energy per inference in J, crossbar accuracy)}} for the baseline and every
    method's chosen point of one seed of a finished demo run (``methods``: only these, by name)."""
    results = json.loads((Path(demo_out) / "results.json").read_text())
    exp = results["experiments"][task]
    models = {"baseline": exp["runs"][seed]["baseline"][0]["checkpoint"]}
    for method, point in exp["chosen"][seed].items():
        if point and method != "baseline":
            models[method if point["value"] is None else f"{method} {point['value']:g}"] = point["checkpoint"]
    if methods is not None:
        models = {name: ck for name, ck in models.items() if name.split(" ")[0] in methods}
    data, table = None, {}
    for name, ckpt in models.items():
        model, cfg, _ = load_checkpoint(ckpt)
        if data is None:
            data = load(cfg.data, quick=cfg.quick_data)
            x_e = torch.from_numpy(np.ascontiguousarray(data.test.x[:ENERGY_INPUTS]))
            x_a = torch.from_numpy(np.ascontiguousarray(data.test.x[:inputs]))
            y_a = torch.from_numpy(np.asarray(data.test.y[:inputs]))
            x_c = torch.from_numpy(np.ascontiguousarray(data.train.x[:CALIBRATION_INPUTS]))
        table[name] = {}
        for cond in conditions:
            config = primary(**CONDITIONS[cond])
            energy = estimate_energy(model, x_e, config).total_energy
            refs = calibrate_adc(model, x_c, config)
            table[name][cond] = (energy, crossbar_accuracy(model, x_a, y_a, config, references=refs))
        log(name + " | " + " | ".join(_cell(*v) for v in table[name].values()))
    return table


def _cell(energy: float, accuracy: float) -> str:
    return f"{energy * 1e9:.1f} nJ, {100 * accuracy:.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", help="the --out folder of a finished hamq demo run")
    ap.add_argument("--task", default="resnet18")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--inputs", type=int, default=200, help="test inputs the crossbar accuracy is read on")
    args = ap.parse_args(argv)
    table = measure(args.demo_out, args.task, args.seed, args.inputs)
    print(f"\n{args.task}, seed {args.seed}: energy per inference ({ENERGY_INPUTS} test inputs) and crossbar accuracy "
          f"({args.inputs} test inputs), primary accounting, cells drawn with seed 1\n")
    print("| model | " + " | ".join(CONDITIONS) + " |")
    print("| --- |" + " --- |" * len(CONDITIONS))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(_cell(*v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
