"""``hamq``: the HamQ study from the command line. Argument parsing only: the work is in
:mod:`hamqcore.experiments`, :mod:`hamqcore.train`, :mod:`hamqcore.energy` and :mod:`hamqcore.rounding`.

    hamq demo [--quick] [--out DIR]      the paper's comparison on offline data (the main job)
    hamq train --model ... --data ...    quantization-aware training with checkpoints and --resume
    hamq energy CHECKPOINT               crossbar energy report (table, JSON, CSV, plot)
    hamq round CHECKPOINT --lam ...      gradient-free HW-aware rounding of a trained model
    hamq sweep --lams 0,0.1,...          energy-accuracy Pareto curve
    hamq bench                           kernel benchmarks as ratios
    hamq density                         the analysis scripts (weight density, rounding threshold)

User errors (a bad argument, a missing file or data set, an unwritable output folder) are one line
on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _user(fn, *args, **kwargs):
    """Call ``fn``; a ValueError/TypeError raised while checking user input becomes a CliError."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise CliError(str(e)) from None


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
        raise argparse.ArgumentTypeError(f"bits must be an integer in 2..16, got {text!r}") from None
    if not 2 <= v <= 16:
        raise argparse.ArgumentTypeError(f"bits must be an integer in 2..16, got {v}")
    return v


def _nonneg(text: str) -> float:
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def _lam_list(text: str, flag: str = "--lams") -> List[float]:
    try:
        lams = [_nonneg(v) for v in text.split(",") if v.strip()]
    except argparse.ArgumentTypeError:
        raise CliError(f"{flag} must be comma-separated numbers >= 0, got {text!r}") from None
    if not lams:
        raise CliError(f"{flag} must be comma-separated numbers >= 0, got {text!r}")
    return lams


def crossbar_config(preset: str, items: List[str]):
    """The CrossbarConfig of ``--preset`` with ``--set key=value`` overrides (each checked)."""
    from .crossbar import PRESETS, CrossbarConfig

    if preset not in PRESETS:
        raise CliError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    kinds = {f.name: type(getattr(PRESETS[preset], f.name)) for f in dataclasses.fields(CrossbarConfig)}
    out: Dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--set expects key=value, got {item!r}")
        if key not in kinds:
            raise CliError(f"--set: unknown crossbar parameter {key!r}; valid: {', '.join(sorted(kinds))}")
        kind = kinds[key]
        try:
            if key == "adc_bits" and value == "auto":
                out[key] = "auto"
            elif kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = kind(value)
        except ValueError:
            raise CliError(f"--set {key}: expected {kind.__name__}, got {value!r}") from None
    return _user(CrossbarConfig.preset, preset, **out)


def _writable(path) -> Path:
    from .train import ensure_writable_dir

    return _user(ensure_writable_dir, Path(path))


# ------------------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from . import experiments

    _writable(args.out)
    results = experiments.demo(args.out, quick=args.quick, images=args.images, progress=not args.no_progress)
    print("\n" + experiments.demo_table(results))
    if args.quick:
        print("(--quick is a smoke run: a few epochs on a data subset, too short for meaningful accuracy)")
    print(f"\nresults: {Path(args.out) / 'results.json'}; figures: {args.out}/*.png  ({results['seconds'] / 60:.1f} min)")
    return 0


def _train_config(args, lam: Optional[float] = None):
    from .train import TrainConfig

    kw = dict(model=args.model, data=args.data, w_bits=args.w_bits, a_bits=args.a_bits,
              lam=args.lam if lam is None else lam, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
              seed=args.seed, width=args.width, warmup_epochs=args.warmup_epochs, ramp_epochs=args.ramp_epochs,
              encoding=args.encoding, threads=args.threads)
    return _user(lambda: TrainConfig(**kw).validate())


def cmd_train(args) -> int:
    from .train import ResumeError, train

    cfg = _train_config(args)
    out = _writable(args.out)
    try:
        r = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except ResumeError as e:
        raise CliError(str(e)) from None
    last = r.history[-1] if r.history else {}
    print(f"test accuracy {100 * r.test_accuracy:.2f} %, mean HW {last.get('mean_hw', float('nan')):.3f}; "
          f"checkpoint {out / 'checkpoint.pt'}, metrics {out / 'metrics.csv'}")
    return 0


def _load(checkpoint):
    from .train import load_checkpoint

    try:
        return load_checkpoint(checkpoint)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from None


def cmd_energy(args) -> int:
    import numpy as np
    import torch

    from . import data as data_mod
    from .energy import estimate_energy
    from .plots import energy_report

    if args.accuracy < 0:
        raise CliError(f"--accuracy must be >= 0, got {args.accuracy}")
    config = crossbar_config(args.preset, args.set)
    model, cfg, _ = _load(args.checkpoint)
    out = _writable(args.out if args.out else Path(args.checkpoint).resolve().parent if Path(args.checkpoint).is_file()
                    else args.checkpoint)
    dataset = data_mod.load(cfg.data, quick=cfg.quick_data)
    x = dataset.test.x[: args.images]
    report = estimate_energy(model, torch.from_numpy(np.ascontiguousarray(x)), config)
    report.to_json(out / "energy.json")
    report.to_csv(out / "energy.csv")
    energy_report(report, out / "energy.png", title=f"{cfg.model} {cfg.w_bits}b/{cfg.a_bits}b, lam={cfg.lam:g}: "
                  f"{report.total_energy * 1e9:.3g} nJ/inference ({config.model})")
    print(report)
    print(f"\nper inference over {len(x)} test inputs of {cfg.data}; wrote {out}/energy.json, energy.csv, energy.png")
    if args.accuracy:
        from .energy import crossbar_forward
        from .train import evaluate

        xa, ya = dataset.test.x[: args.accuracy], dataset.test.y[: args.accuracy]
        digital = evaluate(model, xa, ya)
        hits = sum(int((crossbar_forward(model, torch.from_numpy(np.ascontiguousarray(xa[i:i + 64])), config)
                        .argmax(1).numpy() == ya[i:i + 64]).sum()) for i in range(0, len(ya), 64))
        acc = {"inputs": len(ya), "digital": digital, "crossbar": hits / max(1, len(ya)), "config": config.describe()}
        (out / "accuracy.json").write_text(json.dumps(acc, indent=1))
        print(f"test accuracy on {len(ya)} inputs: digital {100 * digital:.2f} %, on the crossbar "
              f"{100 * acc['crossbar']:.2f} % ({config.describe()}); wrote {out}/accuracy.json")
    return 0


def cmd_sweep(args) -> int:
    from . import experiments

    lams = _lam_list(args.lams)
    base = dataclasses.asdict(_train_config(args, lam=0.0))
    base.pop("lam")
    config = crossbar_config(args.preset, args.set)
    _writable(args.out)
    experiments.sweep(base, lams, args.out, images=args.images, progress=not args.no_progress, config=config)
    print(f"wrote {Path(args.out) / 'sweep.csv'} and {Path(args.out) / 'pareto.png'}")
    return 0


def cmd_round(args) -> int:
    from . import experiments

    lams = _lam_list(args.lam, "--lam")
    if args.radius < 0:
        raise CliError(f"--radius must be an integer >= 0, got {args.radius}")
    config = crossbar_config(args.preset, args.set)
    checkpoint = Path(args.checkpoint)
    folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
    if Path(args.out).resolve() == folder.resolve():
        raise CliError(f"--out {args.out} is the checkpoint's folder; the input checkpoint is never overwritten: "
                       "choose another folder")
    _load(args.checkpoint)  # a clear error before any work
    out = _writable(args.out)
    if args.compare is not None and not Path(args.compare).is_dir():
        raise CliError(f"--compare {args.compare} is not a folder")
    _user(experiments.round_checkpoint, args.checkpoint, lams, out, calib=args.calib, radius=args.radius,
          images=args.images, config=config, compare=args.compare, priced=args.priced)
    print(f"wrote {out}/round.json, round.csv, round_pareto.png and one checkpoint per lam")
    return 0


def cmd_bench(args) -> int:
    script = _find(args.benchmarks_dir, "benchmarks", ["run.py"])
    return subprocess.call([sys.executable, str(script / "run.py")] + (["--quick"] if args.quick else []))


def _find(explicit: Optional[str], name: str, scripts: List[str]) -> Path:
    where = [Path(explicit)] if explicit else [Path.cwd() / name, Path(__file__).resolve().parents[2] / name]
    folder = next((d for d in where if all((d / s).exists() for s in scripts)), None)
    if folder is None:
        raise CliError(f"cannot find the {name} scripts ({', '.join(scripts)}) in {', '.join(map(str, where))}; "
                       f"run from the hamqcore source checkout or pass --{name}-dir")
    return folder


def cmd_density(args) -> int:
    scripts = ["derive_density.py", "verify_density.py", "derive_rounding.py"]
    if args.demo is not None and not (Path(args.demo) / "results.json").exists():
        raise CliError(f"--demo {args.demo} holds no results.json (a `hamq demo` output folder)")
    folder = _find(args.analysis_dir, "analysis", scripts)
    _writable(args.out)
    rc = 0
    for s in scripts:
        cmd = [sys.executable, str(folder / s), "--out", str(args.out)] + (["--quick"] if args.quick else [])
        if s == "verify_density.py" and args.demo is not None:
            cmd += ["--demo", str(args.demo)]
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
    p.add_argument("--lam", type=_nonneg, default=lam_default)
    p.add_argument("--encoding", default="differential",
                   help="cell encoding the penalty counts: differential, sign_magnitude, twos_complement, offset")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=_positive_int, default=16, help="ResNet-18 width (64 = standard)")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--ramp-epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads while training (0: torch's default); "
                   "a fixed count makes runs bit-reproducible on one machine type")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_crossbar_args(p, images_default: int):
    p.add_argument("--preset", default="neurosim-1.3", help="accounting model: neurosim-1.3, mnsim-2.0 or bitline")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a crossbar parameter (adc_bits=auto, skip_empty=true, mapping=differential, ...)")
    p.add_argument("--images", type=_positive_int, default=images_default, help="test inputs the energy is measured on")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hamq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train baseline and HamQ models on offline data and compare energy")
    p.add_argument("--quick", action="store_true", help="a smoke run (about a minute; accuracies not meaningful)")
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
    _add_crossbar_args(p, 32)
    p.add_argument("--accuracy", type=int, default=0, metavar="N",
                   help="also the test accuracy of the first N test inputs computed on the crossbar (its ADC readings)")
    p.add_argument("--out", default=None)
    p.set_defaults(fn=cmd_energy)
    p = sub.add_parser("round", help="gradient-free HW-aware rounding of a trained checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--lam", default="0.003,0.01,0.03",
                   help="one lam or a comma-separated sweep (relative output error per ON cell per weight)")
    p.add_argument("--calib", type=_positive_int, default=256, help="calibration inputs (from the training set)")
    p.add_argument("--radius", type=int, default=8, help="candidate levels within this distance of the nearest")
    p.add_argument("--compare", default=None, help="a folder of HamQ-trained checkpoints (e.g. a sweep) to plot beside")
    p.add_argument("--priced", action="store_true", help="price bits by their crossbar energy instead of counting them")
    _add_crossbar_args(p, 64)
    p.add_argument("--out", default="hamq_round")
    p.set_defaults(fn=cmd_round)
    p = sub.add_parser("sweep", help="train one model per lam and draw the energy-accuracy curve")
    _add_train_args(p)
    p.add_argument("--lams", default="0,0.3,1,3")
    _add_crossbar_args(p, 32)
    p.add_argument("--out", default="hamq_sweep")
    p.set_defaults(fn=cmd_sweep)
    p = sub.add_parser("bench", help="kernel benchmarks (ratios measured side by side)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--benchmarks-dir", default=None)
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("density", help="run the weight-density and rounding derivations and their checks")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--demo", default=None, help="a `hamq demo` output folder: compare its trained weights too")
    p.add_argument("--out", default="hamq_density")
    p.add_argument("--analysis-dir", default=None)
    p.set_defaults(fn=cmd_density)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    from .data import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (CliError, DataError) as e:
        print(f"hamq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # training diverged: a property of the user's settings
        print(f"hamq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hamq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
