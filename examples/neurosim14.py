"""The demo's models under DNN+NeuroSim V1.4's default subarray (SRAM) beside V1.3's (RRAM).

A post-hoc check, not part of the study's protocol (no choice is made from it; the neurosim-1.4 preset
was built after the protocol's results): for one seed of a finished ``hamq demo`` run, every trained
model of the seed (the baseline and every ladder point) is charged on the protocol's energy inputs (the
first test inputs) under the two NeuroSim presets at their own defaults, NeuroSim's offset mapping
and full-scale references: ``neurosim-1.3`` (1T1R RRAM, 2-bit cells, where an ON cell conducts) and
``neurosim-1.4`` (SRAM, 1-bit cells, whose energy model gives every driven row the same current
whatever it stores); each against the same seed's baseline.

    python examples/neurosim14.py DEMO_OUT [--task resnet18] [--seed 0]

About 1 minute per task on 2 cores.
"""
import argparse

from hamqcore.crossbar import PRESETS
from hamqcore.energy import estimate_energy
from hamqcore.study.experiments import seed_models

PRESET_NAMES = ("neurosim-1.3", "neurosim-1.4")


def measure(demo_out, task: str = "resnet18", seed: str = "0", log=print):
    """{model: {preset: (J per inference, ON-cell fraction)}} for every model of one seed, and how many
    test inputs the energies are measured on (the run's protocol)."""
    models, x, _ = seed_models(demo_out, task, seed)
    table = {}
    for name, model, _ in models:
        table[name] = {}
        for preset in PRESET_NAMES:
            rep = estimate_energy(model, x, PRESETS[preset])
            table[name][preset] = (rep.total_energy, rep.on_fraction)
        log(name + ": " + ", ".join(f"{p} {e * 1e9:.1f} nJ" for p, (e, _) in table[name].items()))
    return table, int(x.shape[0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", help="the --out folder of a finished hamq demo run")
    ap.add_argument("--task", default="resnet18")
    ap.add_argument("--seed", default="0")
    args = ap.parse_args(argv)
    table, inputs = measure(args.demo_out, args.task, args.seed, log=lambda s: None)
    base = table["baseline"]
    print(f"\n{args.task}, seed {args.seed}: energy per inference on the first {inputs} test inputs, "
          "each preset at its defaults (offset mapping, full-scale references)\n")
    print("| model | ON cells (1.3 / 1.4) | neurosim-1.3 nJ | vs baseline | neurosim-1.4 nJ | vs baseline |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in table.items():
        (e13, on13), (e14, on14) = row["neurosim-1.3"], row["neurosim-1.4"]
        print(f"| {name} | {100 * on13:.1f} / {100 * on14:.1f} % | {e13 * 1e9:.1f} | "
              f"{100 * (e13 / base['neurosim-1.3'][0] - 1):+.1f} % | {e14 * 1e9:.1f} | "
              f"{100 * (e14 / base['neurosim-1.4'][0] - 1):+.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
