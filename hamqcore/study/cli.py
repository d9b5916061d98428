"""hamq: the HamQ study from the command line.

    hamq demo [--quick] [--out DIR]      the paper's comparison on offline data (the main job)
    hamq train --model ... --data ...    quantization-aware training with checkpoints and --resume
    hamq energy CHECKPOINT               crossbar energy report (table, JSON, CSV, plot)
    hamq round CHECKPOINT --lam ...      gradient-free HW-aware rounding of a trained model
    hamq sweep --lams 0,0.1,...          energy-accuracy Pareto curve

The benchmarks and the analysis scripts live in the source checkout: python benchmarks/run.py,
python analysis/derive_density.py (README). User errors (a bad argument, a missing file or data
set, an unwritable output folder) are one line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
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


def default_jobs() -> int:
    """The demo's default worker count: the cores this process may use, at most 8 (each worker holds
    its own torch; the demo has at most 15 points per stage and seed)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
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
    from ..crossbar import PRESETS, CrossbarConfig

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
            elif kind is type(None):    # an optional number (retention_target): a float, or none
                out[key] = None if value.lower() == "none" else float(value)
            elif kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = kind(value)
        except ValueError:
            expected = "a number or none" if kind is type(None) else kind.__name__
            raise CliError(f"--set {key}: expected {expected}, got {value!r}") from None
    return _user(CrossbarConfig.preset, preset, **out)


def _writable(path) -> Path:
    from .io import ensure_writable_dir

    return _user(ensure_writable_dir, Path(path))


# ------------------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from . import experiments

    _writable(args.out)
    if args.quick:
        print("--quick is a smoke run: a few epochs on a data subset; its accuracies and energies are not "
              "meaningful (they only show that every step runs)", flush=True)
    names = tuple(args.experiments.split(","))
    bad = [n for n in names if n not in experiments.METHODS]
    if bad or not names:
        raise CliError(f"--experiments must be a comma-separated subset of {','.join(experiments.METHODS)}, "
                       f"got {args.experiments!r}")
    from .settings import PAPER_TASKS

    tasks = {}
    for name, root in (("resnet18", args.cifar10), ("ds_cnn", args.speech_commands)):
        if root is not None:
            spec = dict(PAPER_TASKS[name])
            spec["data"] = spec["data"].format(root=root)
            tasks[name] = {**spec, "device": args.device}
    from .distributed import grid
    world = grid()        # under torchrun: the ranks share the points (each its own runs, a world of one)
    results = experiments.demo(args.out, quick=args.quick, seeds=args.seeds, jobs=args.jobs, experiments=names,
                               tasks=tasks or None, grid=world)
    if world.main:
        print("\n" + experiments.demo_table(results))
        print(f"\nresults: {Path(args.out) / 'results.json'}; figures: {args.out}/*.png  "
              f"({results['seconds'] / 60:.1f} min)")
    return 0


def _train_config(args, **fixed):
    """The TrainConfig of the generated train flags (``fixed`` overrides some), validated."""
    from .train import TrainConfig

    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    return _user(lambda: TrainConfig(**{**kw, **fixed}).validate())


def cmd_train(args) -> int:
    from .train import ResumeError, train

    cfg = _train_config(args)
    out = _writable(args.out)
    try:
        r = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    except ResumeError as e:
        raise CliError(str(e)) from None
    if int(os.environ.get("RANK", "0")) != 0:      # torchrun: the other ranks say nothing
        return 0
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
    from ..energy import estimate_energy
    from .io import write_atomic, write_text_atomic
    from .plots import energy_report

    config = crossbar_config(args.preset, args.set)
    if args.factory is not None or args.exported is not None:    # a model of the user's, with --data
        if args.checkpoint is not None:
            raise CliError("give a checkpoint or --factory / --exported, not both")
        model, data_spec, title = _external_model(args), args.data, args.factory or args.exported
        out = _writable(args.out or "hamq_energy")
        dataset = _user(data_mod.load, data_spec)
    else:
        if args.checkpoint is None:
            raise CliError("give a checkpoint written by hamq train, or --factory MODULE:FUNCTION / --exported "
                           "PROGRAM.pt2 with --data SPEC for a model of your own")
        model, cfg, _ = _load(args.checkpoint)
        data_spec = cfg.data
        title = f"{cfg.model} {cfg.w_bits}b/{cfg.a_bits}b, lam={cfg.lam:g}"
        out = _writable(args.out if args.out else Path(args.checkpoint).resolve().parent
                        if Path(args.checkpoint).is_file() else args.checkpoint)
        dataset = _user(data_mod.load, cfg.data, quick=cfg.quick_data)
    x = dataset.test.x[: args.images]
    report = _user(estimate_energy, model, torch.from_numpy(np.ascontiguousarray(x)), config, scope=args.scope)
    write_atomic(out / "energy.json", report.to_json)
    write_atomic(out / "energy.csv", report.to_csv)
    energy_report(report, out / "energy.png", title=f"{title}: {report.total_energy * 1e9:.3g} nJ/inference "
                  f"({config.model})")
    print(report)
    print(f"\nper inference over {len(x)} test inputs of {data_spec}; wrote {out}/energy.json, energy.csv, energy.png")
    if args.accuracy:
        from ..energy import calibrate_adc, crossbar_accuracy
        from .train import evaluate

        xa, ya = dataset.test.x[: args.accuracy], dataset.test.y[: args.accuracy]
        digital = evaluate(model, xa, ya)
        refs = None
        if config.adc_reference == "calibrated":   # the references are set on training inputs, never the test set
            refs = _user(calibrate_adc, model, torch.from_numpy(np.ascontiguousarray(dataset.train.x[:32])), config)
        hits = len(ya) * _user(crossbar_accuracy, model, torch.from_numpy(np.ascontiguousarray(xa)),
                               torch.from_numpy(np.asarray(ya)), config, references=refs)
        acc = {"inputs": len(ya), "digital": digital, "crossbar": hits / max(1, len(ya)), "config": config.describe(),
               "calibration": "32 training inputs" if refs is not None else None}
        write_text_atomic(out / "accuracy.json", json.dumps(acc, indent=1))
        print(f"test accuracy on {len(ya)} inputs: digital {100 * digital:.2f} %, on the crossbar "
              f"{100 * acc['crossbar']:.2f} % ({config.describe()}); wrote {out}/accuracy.json")
    return 0


def _add_external_model_args(p) -> None:
    p.add_argument("--factory", default=None, metavar="MODULE:FUNCTION",
                   help="instead of a checkpoint: a function returning your torch model (importable)")
    p.add_argument("--state-dict", default=None, help="with --factory: its weights (torch.save of a state_dict)")
    p.add_argument("--exported", default=None, metavar="PROGRAM.pt2",
                   help="instead of a checkpoint: a torch.export program (torch.export.save), its weights inside; "
                   "export it with a dynamic batch dimension")
    p.add_argument("--quantize", default=None, metavar="W,A",
                   help="with --factory or --exported: quantize_model at these weight and activation bits (before "
                   "loading --state-dict)")
    p.add_argument("--data", default=None, help="with --factory or --exported: the data set its inputs come from "
                   "(mnist5k, digits, spoken_keywords, cifar10:ROOT, speech_commands:ROOT)")


def _external_model(args):
    """The model of ``--factory package.module:function`` (called with no arguments), with the weights
    of ``--state-dict`` (read with weights_only=True), or of ``--exported`` (a torch.export program,
    :func:`hamqcore.layers.from_exported`), quantized by ``--quantize W,A`` if given."""
    import importlib

    import torch

    from ..layers import from_exported
    from ..quant import quantize_model

    if args.exported is not None:
        if args.factory is not None or args.state_dict is not None:
            raise CliError("--exported carries its own model and weights: give it without --factory / --state-dict")
        if args.data is None:
            raise CliError("--exported needs --data SPEC: the inputs the energy is measured on")
        if not Path(args.exported).is_file():
            raise CliError(f"--exported {args.exported}: no such file")
        try:
            model = from_exported(torch.export.load(args.exported))
        except Exception as e:  # noqa: BLE001 - any unreadable program is a user error
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CliError(f"--exported {args.exported}: {first[:300]}") from None
        if args.quantize is not None:
            _user(quantize_model, model, *_bit_pair(args.quantize))
        return model
    mod_name, sep, fn_name = args.factory.partition(":")
    if not sep or not mod_name or not fn_name:
        raise CliError(f"--factory must be package.module:function, got {args.factory!r}")
    if args.data is None:
        raise CliError("--factory needs --data SPEC: the inputs the energy is measured on")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as e:
        raise CliError(f"--factory {args.factory}: {e}") from None
    model = fn()
    if not isinstance(model, torch.nn.Module):
        raise CliError(f"--factory {args.factory} returned {type(model).__name__}, not a torch.nn.Module")
    if args.quantize is not None:
        _user(quantize_model, model, *_bit_pair(args.quantize))
    if args.state_dict is not None:
        try:
            state = torch.load(args.state_dict, weights_only=True, map_location="cpu")
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - any unreadable or mismatched file is a user error
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CliError(f"--state-dict {args.state_dict}: {first[:300]}") from None
    return model.eval()


def _bit_pair(text: str):
    try:
        w_bits, a_bits = (int(v) for v in text.split(","))
    except ValueError:
        raise CliError(f"--quantize must be W,A (two bit widths), got {text!r}") from None
    return w_bits, a_bits


def cmd_sweep(args) -> int:
    from . import experiments

    lams = _lam_list(args.lams)
    base = dataclasses.asdict(_train_config(args, lam=0.0))
    base.pop("lam")
    config = crossbar_config(args.preset, args.set)
    _writable(args.out)
    experiments.sweep(base, lams, args.out, images=args.images, progress=not args.no_progress, config=config,
                      jobs=args.jobs)
    print(f"wrote {Path(args.out) / 'sweep.csv'} and {Path(args.out) / 'pareto.png'}")
    return 0


def cmd_round(args) -> int:
    from . import experiments

    lams = _lam_list(args.lam, "--lam")
    config = crossbar_config(args.preset, args.set)
    if args.factory is not None or args.exported is not None:    # a model of the user's, with --data
        from . import data as data_mod

        if args.checkpoint is not None:
            raise CliError("give a checkpoint or --factory / --exported, not both")
        if args.compare is not None:
            raise CliError("--compare plots beside hamq train checkpoints; it needs a checkpoint, not --factory / "
                           "--exported")
        model = _external_model(args)
        out = _writable(args.out)
        dataset = _user(data_mod.load, args.data)
        _user(experiments.round_model, model, dataset, lams, out, calib=args.calib, radius=args.radius,
              images=args.images, config=config, priced=args.priced, label=args.factory or args.exported)
        print(f"wrote {out}/round.json and one state_dict.pt per lam (load them into your model: "
              "model.load_state_dict(torch.load(path)))")
        return 0
    if args.checkpoint is None:
        raise CliError("give a checkpoint written by hamq train, or --factory MODULE:FUNCTION / --exported "
                       "PROGRAM.pt2 with --data SPEC for a model of your own")
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


# ------------------------------------------------------------------------------------------------


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _add_train_args(p, skip=()):
    """One flag per TrainConfig field (its default and help line from the field)."""
    from .train import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        kw = dict(default=default, dest=f.name, help=f.metadata["help"])
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif default is None:
            p.add_argument(flag, type=_json_object, metavar="JSON", **kw)
        else:
            p.add_argument(flag, type=type(default), choices=f.metadata.get("choices"), **kw)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _add_crossbar_args(p, images_default: int):
    p.add_argument("--preset", default="neurosim-1.3", help="accounting model: neurosim-1.3, neurosim-1.4, mnsim-2.0 or bitline")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a crossbar parameter (adc_bits=auto, skip_empty=true, mapping=differential, ...); "
                        "repeat for several")
    p.add_argument("--images", type=_positive_int, default=images_default, help="test inputs the energy is measured on")


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module text as written, and every flag's default after its help line."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hamq", description=__doc__, formatter_class=_Help)
    sub = ap.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, fn, out: Optional[str]):
        p = sub.add_parser(name, help=help, description=help, formatter_class=_Help)
        p.set_defaults(fn=fn)
        if out is not None:
            p.add_argument("--out", default=out, help="output folder (created; never the input checkpoint's)")
        return p

    p = command("demo", "the paper's comparison under the study's protocol: HamQ, fewer bits, pruning and "
                "rounding at equal crossbar accuracy", cmd_demo, "hamq_out")
    p.add_argument("--quick", action="store_true", help="a smoke run (minutes; accuracies not meaningful)")
    p.add_argument("--seeds", type=_positive_int, default=1, help="seeds 0..N-1 (the README table: 3)")
    p.add_argument("--experiments", default="resnet18,ds_cnn", help="which experiments (comma-separated)")
    p.add_argument("--cifar10", metavar="ROOT", default=None, help="the paper's task: full-width ResNet-18 on "
                   "CIFAR-10 from this folder (its python batches), instead of the demo's MNIST subset")
    p.add_argument("--speech-commands", metavar="ROOT", default=None, help="the paper's task: DS-CNN-S on "
                   "Speech Commands v2 from this folder, instead of the synthetic keywords")
    p.add_argument("--device", default="cpu", help="with --cifar10 / --speech-commands: cpu, cuda or cuda:N")
    p.add_argument("--jobs", type=_positive_int, default=default_jobs(), help="points in parallel worker processes "
                   "(default: this machine's usable cores, at most 8); every point runs on one thread, so the "
                   "results do not depend on it")
    p = command("train", "quantization-aware training with the HamQ regularizer", cmd_train, "hamq_train")
    _add_train_args(p)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p = command("energy", "crossbar energy report of a checkpoint, or of a model of your own", cmd_energy, None)
    p.add_argument("checkpoint", nargs="?", default=None, help="a checkpoint.pt written by hamq train (or its folder)")
    _add_external_model_args(p)
    _add_crossbar_args(p, 32)
    p.add_argument("--scope", default="subarray", choices=("subarray", "chip"),
                   help="subarray: the arrays and their periphery; chip: plus NeuroSim V1.3's buffers, buses, "
                        "H-trees, adder trees and activation units (neurosim-1.3 at its array and ADC defaults)")
    p.add_argument("--accuracy", type=_nonneg_int, default=0, metavar="N",
                   help="also the test accuracy of the first N test inputs computed on the crossbar (its ADC readings; "
                   "--set adc_reference=calibrated calibrates on 32 training inputs)")
    p.add_argument("--out", default=None, help="output folder (default: the checkpoint's folder)")
    p = command("round", "gradient-free HW-aware rounding of a trained checkpoint, or of a model of your own",
                cmd_round, "hamq_round")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a checkpoint.pt written by hamq train (or its folder); never overwritten")
    _add_external_model_args(p)
    p.add_argument("--lam", default="0.003,0.01,0.03",
                   help="one lam or a comma-separated sweep (relative output error per ON cell per weight)")
    p.add_argument("--calib", type=_positive_int, default=256, help="calibration inputs (from the training set)")
    p.add_argument("--radius", type=int, default=8, help="candidate levels within this distance of the nearest")
    p.add_argument("--compare", default=None, help="a folder of HamQ-trained checkpoints (e.g. a sweep) to plot beside")
    p.add_argument("--priced", action="store_true", help="price bits by their crossbar energy instead of counting them")
    _add_crossbar_args(p, 64)
    p = command("sweep", "train one model per lam and draw the energy-accuracy curve", cmd_sweep, "hamq_sweep")
    _add_train_args(p, skip=("lam",))
    p.add_argument("--lams", default="0,0.3,1,3", help="comma-separated lam values, one model each")
    p.add_argument("--jobs", type=_positive_int, default=1, help="training runs in parallel worker processes")
    _add_crossbar_args(p, 32)
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
