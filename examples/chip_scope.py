"""The demo's models with the chip around the subarrays charged (README "Chip scope").

A post-hoc check, not part of the study's protocol (no choice is made from it; the chip scope was
built after the protocol's results): for one seed of a finished ``hamq demo`` run, every trained
model of the seed (the baseline and every ladder point) is charged under the primary accounting
(the run's own protocol record: its primary accounting, at the primary configuration: calibrated
references) on the protocol's energy inputs (the first test inputs), at subarray scope (the study's numbers:
each chosen point's equals its results.json test energy) and at chip scope (plus DNN+NeuroSim V1.3's
buffers, buses, H-trees, adder trees and ReLU units: hamqcore.chip); each against the same seed's
baseline.

    python examples/chip_scope.py DEMO_OUT [--task resnet18] [--seed 0]

About 1 minute per task on 2 cores.
"""
import argparse
from pathlib import Path

from hamqcore.crossbar import CrossbarConfig
from hamqcore.energy import estimate_energy
from hamqcore.study.experiments import seed_models
from hamqcore.study.settings import PROTOCOL


def primary(protocol=PROTOCOL) -> CrossbarConfig:
    spec = dict(protocol["primary"])
    return CrossbarConfig.preset(spec.pop("preset"), **spec)


def measure(demo_out, task: str = "resnet18", seed: str = "0", log=print):
    """{model: (subarray-scope J, chip-scope J, its report's floorplan)} per inference for every model of
    one seed, the chosen points' results.json test energies {model: J} (to check the first), and how many
    test inputs the energies are measured on (the run's protocol)."""
    models, x, results = seed_models(demo_out, task, seed)
    protocol = results["protocol"]            # the run's own: its primary accounting and energy inputs
    chosen = {Path(p["checkpoint"]).parent.name: p["test"]["energy_j"]["primary"]
              for p in results["experiments"][task]["chosen"][seed].values() if p and not p["overrides"]}
    config, table = primary(protocol), {}
    for name, model, _ in models:
        sub = estimate_energy(model, x, config)
        chip = estimate_energy(model, x, config, scope="chip")
        table[name] = (sub.total_energy, chip.total_energy, chip.floorplan)
        log(f"{name}: {sub.total_energy * 1e9:.1f} nJ subarray, {chip.total_energy * 1e9:.1f} nJ chip")
    return table, chosen, protocol["energy_inputs"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_out", help="the --out folder of a finished hamq demo run")
    ap.add_argument("--task", default="resnet18")
    ap.add_argument("--seed", default="0")
    args = ap.parse_args(argv)
    table, chosen, inputs = measure(args.demo_out, args.task, args.seed, log=lambda s: None)
    for name, want in chosen.items():     # the subarray scope is the study's own number
        assert table[name][0] == want, (name, table[name][0], want)
    base_sub, base_chip, plan = table["baseline"]
    print(f"\n{args.task}, seed {args.seed}: energy per inference on the first {inputs} test "
          f"inputs, primary accounting and configuration; chip: NeuroSim's {plan.tile}x{plan.tile} tiles of "
          f"{plan.pe}x{plan.pe} PEs, {plan.tile_grid[0]}x{plan.tile_grid[1]} tiles. * = a chosen point "
          f"(its subarray energy equals results.json's)\n")
    print("| model | subarray nJ | vs baseline | chip nJ | of it the chip's | vs baseline |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (sub, chip, _) in table.items():
        print(f"| {name}{' *' if name in chosen else ''} | {sub * 1e9:.1f} | {100 * (sub / base_sub - 1):+.1f} % | "
              f"{chip * 1e9:.1f} | {100 * (1 - sub / chip):.1f} % | {100 * (chip / base_chip - 1):+.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
