"""``hamq``: the HamQ study from the command line.

    hamq demo [--quick] [--out DIR]      the paper's comparison on offline data (the main job)
    hamq train --model ... --data ...    quantization-aware training with checkpoints and --resume
    hamq energy CHECKPOINT               crossbar energy report (table, JSON, CSV, plot)
    hamq sweep --lams 0,0.1,...          energy-accuracy Pareto curve
    hamq bench                           kernel benchmarks as ratios
    hamq density                         the weight-density analysis scripts
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

PAPER = {  # IEEE Sensors J. 2024: HamQ vs no regularizer
    "resnet18": {"energy_pct": -54.0, "accuracy_pt": -1.5, "bits": 8},
    "ds_cnn": {"energy_pct": -42.7, "accuracy_pt": -3.5, "bits": 6},
}

# The demo's settings (README "The demo" explains them): both runs use the same quantizer (LSQ steps
# started from the standard max grid, recalibrated during warm-up, then learned at 0.3x the lr),
# seed, data and schedule; the task is learned first (warm-up), then lam ramps up. Measured on this
# machine, lam = 1 and 3 save nearly the same (Adam normalises the update once the penalty
# dominates); 3 with the longer penalised phase saved the most at no accuracy cost.
DEMO = {
    "resnet18": dict(model="resnet18", data="mnist5k", w_bits=8, a_bits=8, width=16, epochs=12, lam=3.0,
                     batch_size=64, lr=2e-3, warmup_epochs=2, ramp_epochs=2, step_lr_scale=0.3),
    "ds_cnn": dict(model="ds_cnn", data="spoken_keywords", w_bits=6, a_bits=6, epochs=24, lam=3.0,
                   batch_size=64, lr=3e-3, warmup_epochs=4, ramp_epochs=4, step_lr_scale=0.3),
}
DEMO_QUICK = {
    "resnet18": dict(width=8, epochs=3, train_subset=1200, warmup_epochs=1, ramp_epochs=1),
    "ds_cnn": dict(epochs=6, quick_data=True, warmup_epochs=1, ramp_epochs=2),
}


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _bits(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bits must be an integer in 2..8, got {text!r}") from None
    if not 2 <= v <= 8:
        raise argparse.ArgumentTypeError(f"bits must be an integer in 2..8, got {v}")
    return v


def _lam(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"lam must be a number >= 0, got {text!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"lam must be a number >= 0, got {text!r}")
    return v


# ------------------------------------------------------------------------------------------------
# energy helpers shared by demo / energy / sweep
# ------------------------------------------------------------------------------------------------


def _energy(model, x: np.ndarray, preset: str = "neurosim-rram-22nm", overrides: Optional[Dict] = None,
            zero_weights: bool = False):
    import torch

    from .energy import CrossbarConfig, estimate_energy

    cfg = CrossbarConfig.preset(preset, **(overrides or {}))
    return estimate_energy(model, torch.from_numpy(np.ascontiguousarray(x)), cfg, zero_weights=zero_weights)


def _hw_hist(model, bits: int) -> List[int]:
    from .nn import hw_stats

    return hw_stats(model, bits)["total"]["histogram"][: bits + 1]


# ------------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from . import data as data_mod
    from .energy import energy_reduction
    from .train import TrainConfig, train

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    results = {"quick": args.quick, "experiments": {}}
    for name in ("resnet18", "ds_cnn"):
        settings = dict(DEMO[name])
        if args.quick:
            settings.update(DEMO_QUICK[name])
        hamq_lam = settings.pop("lam")
        probe = TrainConfig(**settings)
        print(f"\n== {name}: {probe.w_bits}-bit on {probe.data} ==", flush=True)
        dataset = data_mod.load(probe.data, quick=probe.quick_data)
        n_img = min(args.images, len(dataset.test))
        runs = {}
        for variant, lam in (("baseline", 0.0), ("hamq", hamq_lam)):
            cfg = TrainConfig(**settings, lam=lam)
            t0 = time.perf_counter()
            r = train(cfg, out / name / variant, dataset=dataset, progress=not args.no_progress)
            report = _energy(r.model, dataset.test.x[:n_img])
            report.to_json(out / name / variant / "energy.json")
            floor = _energy(r.model, dataset.test.x[:n_img], zero_weights=True).total_energy
            runs[variant] = {"lam": lam, "test_accuracy": r.test_accuracy, "energy_j": report.total_energy,
                             "floor_energy_j": floor,
                             "energy_by_component_j": report.energy, "on_fraction": report.on_fraction,
                             "mean_current_a": report.mean_current, "hw_histogram": _hw_hist(r.model, cfg.w_bits),
                             "energy_by_layer_j": {l.name: l.energy for l in report.layers},
                             "train_seconds": time.perf_counter() - t0}
            print(f"   {variant:>8}: accuracy {100 * r.test_accuracy:6.2f} %  energy {report.total_energy * 1e9:10.2f} nJ"
                  f"  ON cells {100 * report.on_fraction:5.2f} %  ({runs[variant]['train_seconds']:.0f} s)", flush=True)
        b, h = runs["baseline"], runs["hamq"]
        summary = {"energy_pct": energy_reduction(b["energy_j"], h["energy_j"]),
                   # the largest saving any weights could give: HamQ's inputs, all weights 0
                   "floor_pct": energy_reduction(b["energy_j"], h["floor_energy_j"]),
                   "accuracy_pt": 100 * (h["test_accuracy"] - b["test_accuracy"]),
                   "paper": PAPER[name], "bits": probe.w_bits, "data": probe.data, "images": n_img,
                   "settings": {**settings, "lam": hamq_lam}}
        summary["meets_paper"] = (summary["energy_pct"] <= PAPER[name]["energy_pct"]
                                  and summary["accuracy_pt"] >= PAPER[name]["accuracy_pt"])
        results["experiments"][name] = {"baseline": b, "hamq": h, "summary": summary}
    results["seconds"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    _demo_figures(results, out)
    print("\n" + demo_table(results))
    if args.quick:
        print("(--quick is a smoke run: a few epochs on a data subset, too short for meaningful accuracy)")
    print(f"\nresults: {out / 'results.json'}; figures: {out}/*.png  ({results['seconds'] / 60:.1f} min)")
    return 0


def demo_table(results) -> str:
    head = (f"{'model':<10} {'bits':>4} {'data':<16} {'acc base':>9} {'acc HamQ':>9} {'d acc':>7} "
            f"{'E base nJ':>11} {'E HamQ nJ':>11} {'d E':>8} {'ON base':>8} {'ON HamQ':>8} {'floor':>8}  paper (dE, d acc)")
    lines = [head, "-" * len(head)]
    for name, e in results["experiments"].items():
        b, h, s = e["baseline"], e["hamq"], e["summary"]
        lines.append(
            f"{name:<10} {s['bits']:>4} {s['data']:<16} {100 * b['test_accuracy']:>8.2f}% {100 * h['test_accuracy']:>8.2f}% "
            f"{s['accuracy_pt']:>+6.2f} {b['energy_j'] * 1e9:>11.2f} {h['energy_j'] * 1e9:>11.2f} {s['energy_pct']:>+7.1f}% "
            f"{100 * b['on_fraction']:>7.2f}% {100 * h['on_fraction']:>7.2f}% {s['floor_pct']:>+7.1f}%  "
            f"({s['paper']['energy_pct']:+.1f} %, {s['paper']['accuracy_pt']:+.1f} pt) "
            f"{'meets' if s['meets_paper'] else 'short of'} the paper")
    return "\n".join(lines)


def _demo_figures(results, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = results["experiments"]
    # 1. energy by component, baseline vs HamQ
    fig, axes = plt.subplots(1, len(exps), figsize=(5 * len(exps), 4))
    for ax, (name, e) in zip(np.atleast_1d(axes), exps.items()):
        comps = list(e["baseline"]["energy_by_component_j"])
        bottom = np.zeros(2)
        for c in comps:
            vals = np.array([e[v]["energy_by_component_j"][c] for v in ("baseline", "hamq")]) * 1e9
            ax.bar(["baseline", "HamQ"], vals, bottom=bottom, label=c)
            bottom += vals
        ax.set_title(f"{name}: {e['summary']['energy_pct']:+.1f} % energy")
        ax.set_ylabel("energy per inference (nJ)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "energy_by_component.png", dpi=120)
    plt.close(fig)
    # 2. energy by layer
    fig, axes = plt.subplots(len(exps), 1, figsize=(10, 3.5 * len(exps)))
    for ax, (name, e) in zip(np.atleast_1d(axes), exps.items()):
        layers = list(e["baseline"]["energy_by_layer_j"])
        x = np.arange(len(layers))
        for k, v in enumerate(("baseline", "hamq")):
            vals = [sum(e[v]["energy_by_layer_j"][l].values()) * 1e9 for l in layers]
            ax.bar(x + (k - 0.5) * 0.4, vals, 0.4, label="HamQ" if v == "hamq" else v)
        ax.set_xticks(x, layers, rotation=70, fontsize=6)
        ax.set_ylabel("nJ / inference")
        ax.set_title(f"{name}: energy by layer")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "energy_by_layer.png", dpi=120)
    plt.close(fig)
    # 3. HW histograms
    fig, axes = plt.subplots(1, len(exps), figsize=(5 * len(exps), 3.5))
    for ax, (name, e) in zip(np.atleast_1d(axes), exps.items()):
        for v, label in (("baseline", "baseline"), ("hamq", "HamQ")):
            hist = np.array(e[v]["hw_histogram"], float)
            ax.bar(np.arange(len(hist)) + (0.2 if v == "hamq" else -0.2), hist / hist.sum(), 0.4, label=label)
        ax.set_xlabel("Hamming weight (ON cells per weight)")
        ax.set_ylabel("fraction of weights")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "hw_histograms.png", dpi=120)
    plt.close(fig)
    # 4. accuracy and energy bars
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = list(exps)
    x = np.arange(len(names))
    for k, v in enumerate(("baseline", "hamq")):
        a1.bar(x + (k - 0.5) * 0.4, [100 * exps[n][v]["test_accuracy"] for n in names], 0.4, label=v)
        a2.bar(x + (k - 0.5) * 0.4, [exps[n][v]["energy_j"] / exps[n]["baseline"]["energy_j"] for n in names], 0.4, label=v)
    a1.set_xticks(x, names)
    a1.set_ylabel("test accuracy (%)")
    a1.set_ylim(bottom=max(0, min(100 * exps[n][v]["test_accuracy"] for n in names for v in ("baseline", "hamq")) - 10))
    a2.set_xticks(x, names)
    a2.set_ylabel("energy / baseline")
    a1.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_energy.png", dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# train / energy / sweep
# ------------------------------------------------------------------------------------------------


def _train_config(args):
    from .train import TrainConfig

    kw = dict(model=args.model, data=args.data, w_bits=args.w_bits, a_bits=args.a_bits, lam=args.lam,
              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, width=args.width,
              warmup_epochs=args.warmup_epochs, ramp_epochs=args.ramp_epochs)
    return TrainConfig(**kw).validate()


def cmd_train(args) -> int:
    from .train import train

    cfg = _train_config(args)
    r = train(cfg, Path(args.out), resume=args.resume, progress=not args.no_progress)
    last = r.history[-1] if r.history else {}
    print(f"test accuracy {100 * r.test_accuracy:.2f} %, mean HW {last.get('mean_hw', float('nan')):.3f}; "
          f"checkpoint {Path(args.out) / 'checkpoint.pt'}, metrics {Path(args.out) / 'metrics.csv'}")
    return 0


def _parse_overrides(items: List[str]) -> Dict[str, object]:
    from .energy import CrossbarConfig

    types = {f.name: f.type for f in dataclasses.fields(CrossbarConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set expects key=value, got {item!r}")
        if key not in types:
            raise CliError(f"--set: unknown crossbar parameter {key!r}; valid: {', '.join(sorted(types))}")
        t = types[key] if isinstance(types[key], type) else {"int": int, "float": float, "str": str}[types[key]]
        try:
            out[key] = t(value)
        except ValueError:
            raise CliError(f"--set {key}: expected {t.__name__}, got {value!r}") from None
    return out


def cmd_energy(args) -> int:
    from .train import load_checkpoint

    model, cfg, _ = load_checkpoint(args.checkpoint)
    from . import data as data_mod

    dataset = data_mod.load(cfg.data, quick=cfg.quick_data)
    x = dataset.test.x[: args.images]
    report = _energy(model, x, args.preset, _parse_overrides(args.set))
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    report.to_json(out / "energy.json")
    report.to_csv(out / "energy.csv")
    report.plot(out / "energy.png", title=f"{cfg.model} {cfg.w_bits}b/{cfg.a_bits}b, lam={cfg.lam:g}: "
                f"{report.total_energy * 1e9:.3g} nJ/inference")
    print(report)
    print(f"\nper inference over {len(x)} test inputs of {cfg.data}; wrote {out}/energy.json, energy.csv, energy.png")
    return 0


def cmd_sweep(args) -> int:
    from . import data as data_mod
    from .train import train

    try:
        lams = [float(v) for v in args.lams.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--lams must be comma-separated numbers, got {args.lams!r}") from None
    if not lams or any(not np.isfinite(v) or v < 0 for v in lams):
        raise CliError(f"--lams must be numbers >= 0, got {args.lams!r}")
    base_cfg = _train_config(args)
    dataset = data_mod.load(base_cfg.data)
    out = Path(args.out)
    rows = []
    for lam in lams:
        cfg = dataclasses.replace(base_cfg, lam=lam)
        r = train(cfg, out / f"lam_{lam:g}", dataset=dataset, progress=not args.no_progress)
        rep = _energy(r.model, dataset.test.x[: args.images])
        rows.append({"lam": lam, "test_accuracy": r.test_accuracy, "energy_j": rep.total_energy,
                     "on_fraction": rep.on_fraction})
        print(f"lam={lam:g}: accuracy {100 * r.test_accuracy:.2f} %, energy {rep.total_energy * 1e9:.2f} nJ", flush=True)
    base = next((r for r in rows if r["lam"] == 0), rows[0])
    for r in rows:
        r["energy_pct"] = 100 * (r["energy_j"] / base["energy_j"] - 1)
        r["accuracy_pt"] = 100 * (r["test_accuracy"] - base["test_accuracy"])
    import csv

    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(rows, key=lambda r: r["energy_pct"])
    ax.plot([r["energy_pct"] for r in pts], [r["accuracy_pt"] for r in pts], "o-", label=f"{base_cfg.model} sweep")
    for r in rows:
        ax.annotate(f"λ={r['lam']:g}", (r["energy_pct"], r["accuracy_pt"]), fontsize=7)
    for name, p in PAPER.items():
        ax.plot(p["energy_pct"], p["accuracy_pt"], "*", ms=12, label=f"paper {name} ({p['bits']}-bit)")
    ax.set_xlabel("energy change vs lam=0 (%)")
    ax.set_ylabel("accuracy change (pt)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)
    plt.close(fig)
    print(f"wrote {out / 'sweep.csv'} and {out / 'pareto.png'}")
    return 0


def cmd_bench(args) -> int:
    from .bench import core_cases, crossbar_cases, format_table, regularizer_cases, resnet18_energy_time

    cases = core_cases(args.quick) + crossbar_cases(args.quick) + regularizer_cases(args.quick)
    print(format_table(cases))
    print(f"\nResNet-18 energy estimate, one image: {resnet18_energy_time(2 if args.quick else 3):.3f} s (target <= 0.5 s)")
    return 0


def cmd_density(args) -> int:
    scripts = ["derive_density.py", "verify_density.py"]
    where = [Path(args.analysis_dir)] if args.analysis_dir else [Path.cwd() / "analysis",
                                                                  Path(__file__).resolve().parents[1] / "analysis"]
    folder = next((d for d in where if all((d / s).exists() for s in scripts)), None)
    if folder is None:
        raise CliError(f"cannot find the analysis scripts ({', '.join(scripts)}) in {', '.join(map(str, where))}; "
                       "run from the hamqcore source checkout or pass --analysis-dir")
    rc = 0
    for s in scripts:
        cmd = [sys.executable, str(folder / s), "--out", str(args.out)] + (["--quick"] if args.quick else [])
        print("$", " ".join(cmd), flush=True)
        rc = rc or subprocess.call(cmd)
    return rc


# ------------------------------------------------------------------------------------------------


def _add_train_args(p, lam_default=0.0):
    from .data import DATASETS

    p.add_argument("--model", choices=("resnet18", "ds_cnn"), default="resnet18")
    p.add_argument("--data", default="mnist5k", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--w-bits", type=_bits, default=8)
    p.add_argument("--a-bits", type=_bits, default=8)
    p.add_argument("--lam", type=_lam, default=lam_default)
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=_positive_int, default=16, help="ResNet-18 width (64 = standard)")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--ramp-epochs", type=int, default=2)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hamq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train baseline and HamQ models on offline data and compare energy")
    p.add_argument("--quick", action="store_true", help="a smoke run (under a minute; accuracies not meaningful)")
    p.add_argument("--out", default="hamq_out")
    p.add_argument("--images", type=_positive_int, default=64, help="test inputs the energy is measured on")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("train", help="quantization-aware training with the HamQ regularizer")
    _add_train_args(p)
    p.add_argument("--out", default="hamq_train")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("energy", help="crossbar energy report of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--preset", default="neurosim-rram-22nm")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a crossbar parameter")
    p.add_argument("--images", type=_positive_int, default=32)
    p.add_argument("--out", default=None)
    p.set_defaults(fn=cmd_energy)
    p = sub.add_parser("sweep", help="train one model per lam and draw the energy-accuracy curve")
    _add_train_args(p)
    p.add_argument("--lams", default="0,0.1,0.3,1,3")
    p.add_argument("--images", type=_positive_int, default=32)
    p.add_argument("--out", default="hamq_sweep")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("bench", help="kernel benchmarks (ratios measured side by side)")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("density", help="run the weight-density derivation and verification")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="hamq_density")
    p.add_argument("--analysis-dir", default=None)
    p.set_defaults(fn=cmd_density)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (CliError, DataError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"hamq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hamq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
