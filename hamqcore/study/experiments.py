"""The studies behind ``hamq demo`` and ``hamq sweep``, callable from Python with plain arguments;
each returns its results as a dict (and writes files only where ``out`` is given).

    from hamqcore.study.experiments import demo
    results = demo("hamq_out", quick=True)
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..crossbar import CrossbarConfig
from ..energy import energy_reduction
from .settings import (
    ACCOUNTINGS,
    DEMO,
    DEMO_CELL_BITS,
    DEMO_LAMS,
    DEMO_QUICK,
    DEMO_QUICK_LAMS,
    HEADLINE,
    PAPER,
)

def accounting_spec(name: str, experiment: str) -> Dict[str, object]:
    """One accounting of one experiment as a preset spec ({"preset": ..., overrides})."""
    spec = dict(ACCOUNTINGS[name])
    if spec.get("mapping") == "differential":
        spec["cell_bits"] = DEMO_CELL_BITS[experiment]
    return spec


def accounting_configs(experiment: str, names: Optional[Sequence[str]] = None) -> Dict[str, CrossbarConfig]:
    """The demo's accountings of one experiment as CrossbarConfigs."""
    out = {}
    for name in names or ACCOUNTINGS:
        spec = accounting_spec(name, experiment)
        out[name] = CrossbarConfig.preset(spec.pop("preset"), **spec)
    return out


def measure(model, x: np.ndarray, configs: Dict[str, CrossbarConfig], floor: bool = False) -> Dict[str, Dict]:
    """Energy per inference of ``model`` on inputs ``x`` under each configuration."""
    import torch

    from ..energy import estimate_energy

    inputs = torch.from_numpy(np.ascontiguousarray(x))
    out = {}
    for name, cfg in configs.items():
        rep = estimate_energy(model, inputs, cfg, floor=floor)
        out[name] = {"energy_j": rep.total_energy, "energy_by_component_j": rep.energy,
                     "on_fraction": rep.on_fraction, "mean_current_a": rep.mean_current,
                     "conversions": rep.conversions, "resolution_columns": rep.resolution_columns,
                     "config": cfg.describe()}
    return out


def _run(settings: Dict, lam: float, dataset, out: Path, x_energy, configs, progress: bool,
         floor: bool = False) -> Dict:
    """One training run and its measurements (no model in the result, so it can cross processes)."""
    from ..nn import hw_stats
    from . import data as data_mod
    from .train import TrainConfig, train

    cfg = TrainConfig(**settings, lam=lam)
    if dataset is None:                        # in a worker process: the (cached) data set again
        dataset = data_mod.load(cfg.data, quick=cfg.quick_data)
    t0 = time.perf_counter()
    r = train(cfg, out, dataset=dataset, progress=progress)
    energies = measure(r.model, x_energy, configs)
    stats = hw_stats(r.model, cfg.w_bits, cfg.encoding)["total"]
    result = {"lam": lam, "test_accuracy": r.test_accuracy, "energy": energies,
              "energy_j": {k: v["energy_j"] for k, v in energies.items()},
              "energy_by_component_j": {k: v["energy_by_component_j"] for k, v in energies.items()},
              "on_fraction": {k: v["on_fraction"] for k, v in energies.items()},
              "mean_hw": stats["mean_hw"], "hw_histogram": stats["histogram"][: cfg.w_bits + 1],
              "train_seconds": time.perf_counter() - t0}
    if floor:
        result["floor"] = measure(r.model, x_energy, configs, floor=True)
    return result


def run_grid(jobs_args: Sequence[tuple], jobs: int = 1) -> List[Dict]:
    """:func:`_run` for every argument tuple (settings, lam, dataset, out, x_energy, configs, progress,
    floor), serially or in ``jobs`` worker processes (spawned: each trains with its settings' own
    thread count, so every result is the one a serial run gives). Results in the order given."""
    if jobs <= 1 or len(jobs_args) <= 1:
        return [_run(*a) for a in jobs_args]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    slim = [(a[0], a[1], None, *a[3:6], False, *a[7:]) for a in jobs_args]   # workers load the data themselves
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        return list(pool.map(_run_star, slim))


def _run_star(args: tuple) -> Dict:
    return _run(*args)


def demo(out="hamq_out", quick: bool = False, images: int = 64, progress: bool = True,
         experiments: Sequence[str] = ("resnet18", "ds_cnn"), log: Callable[[str], None] = print,
         jobs: int = 1) -> Dict:
    """The paper's comparison on offline data: per experiment a baseline (lam = 0) and a ladder of
    HamQ models with the same seed, data, quantizer and schedule; test accuracy and crossbar energy
    per inference (``images`` test inputs) under every accounting in :data:`ACCOUNTINGS`; the
    lowest-energy HamQ model within the paper's accuracy drop (under the headline accounting). Writes
    checkpoints, ``results.json`` and figures under ``out``; returns the results. ``jobs``: training
    runs in parallel worker processes (the same results as one after another)."""
    from . import data as data_mod
    from .plots import demo_figures
    from .io import ensure_writable_dir

    out = ensure_writable_dir(Path(out))
    t_start = time.perf_counter()
    results: Dict = {"quick": quick, "images": images, "headline": HEADLINE, "accountings": list(ACCOUNTINGS),
                     "experiments": {}}
    for name in experiments:
        configs = accounting_configs(name)
        settings = dict(DEMO[name], weighting="crossbar", crossbar=accounting_spec(HEADLINE, name))
        if quick:
            settings.update(DEMO_QUICK[name])
        lams = (DEMO_QUICK_LAMS if quick else DEMO_LAMS)[name]
        log(f"\n== {name}: {settings['w_bits']}-bit on {settings['data']}, lam ladder {lams} ==")
        dataset = data_mod.load(settings["data"], quick=settings.get("quick_data", False))
        x_energy = dataset.test.x[: min(images, len(dataset.test))]
        args = [(settings, lam, dataset, out / name / (f"hamq_lam{lam:g}" if lam else "baseline"), x_energy, configs,
                 progress and jobs <= 1, lam == 0.0) for lam in (0.0, *lams)]
        base, *ladder = run_grid(args, jobs)
        floor = base.pop("floor")
        log(f"   baseline: accuracy {100 * base['test_accuracy']:6.2f} %  "
            f"energy {base['energy_j'][HEADLINE] * 1e9:9.2f} nJ ({HEADLINE})  ({base['train_seconds']:.0f} s)")
        for run in ladder:
            run["accuracy_pt"] = 100 * (run["test_accuracy"] - base["test_accuracy"])
            run["energy_pct"] = {k: energy_reduction(base["energy_j"][k], v) for k, v in run["energy_j"].items()}
            log(f"   lam={run['lam']:<5g}: accuracy {100 * run['test_accuracy']:6.2f} % ({run['accuracy_pt']:+.2f} pt)  "
                f"energy {run['energy_pct'][HEADLINE]:+6.1f} % ({HEADLINE})  ({run['train_seconds']:.0f} s)")
        budget = PAPER[name]["accuracy_pt"]
        within = [r for r in ladder if r["accuracy_pt"] >= budget]
        chosen = min(within or ladder, key=lambda r: r["energy_j"][HEADLINE])
        summary = {"bits": settings["w_bits"], "data": settings["data"], "encoding": settings["encoding"],
                   "images": len(x_energy), "accuracy_budget_pt": budget, "chosen_lam": chosen["lam"],
                   "within_budget": bool(within), "accuracy_pt": chosen["accuracy_pt"],
                   "energy_pct": chosen["energy_pct"], "paper": PAPER[name],
                   "floor_pct": {k: energy_reduction(base["energy_j"][k], v["energy_j"]) for k, v in floor.items()},
                   "settings": settings, "lams": list(lams),
                   "accountings": {k: c.describe() for k, c in configs.items()}}
        summary["meets_paper"] = bool(within) and chosen["energy_pct"][HEADLINE] <= PAPER[name]["energy_pct"]
        results["experiments"][name] = {"baseline": base, "ladder": ladder, "chosen": chosen, "summary": summary}
    results["seconds"] = time.perf_counter() - t_start
    (out / "results.json").write_text(json.dumps(results, indent=2))
    demo_figures(results, out)
    return results


def demo_table(results: Dict) -> str:
    """The demo's table, at most 100 columns: per experiment the chosen HamQ model's accuracy and its
    energy change under every accounting, against the paper's operating point."""
    lines = []
    for name, e in results["experiments"].items():
        b, c, s = e["baseline"], e["chosen"], e["summary"]
        verdict = "meets" if s["meets_paper"] else "short of"
        lines.append(f"{name}: {s['bits']}-bit, lam = {s['chosen_lam']:g} (budget {s['accuracy_budget_pt']:+.1f} pt): "
                     f"accuracy {100 * b['test_accuracy']:.2f} % -> {100 * c['test_accuracy']:.2f} % "
                     f"({s['accuracy_pt']:+.2f} pt)")
        for acc in results["accountings"]:
            mark = "  (headline)" if acc == results["headline"] else ""
            lines.append(f"    {acc + mark:<40} energy {c['energy_pct'][acc]:+7.1f} %")
        lines.append(f"    paper: {s['paper']['energy_pct']:+.1f} % at {s['paper']['accuracy_pt']:+.1f} pt; "
                     f"{verdict} the paper under the headline accounting")
    lines.append("(the lowest-energy HamQ model within the paper's accuracy drop, against the baseline)")
    return "\n".join(lines)


def sweep(base_settings: Dict, lams: Sequence[float], out, images: int = 32, progress: bool = True,
          config: Optional[CrossbarConfig] = None, log: Callable[[str], None] = print, jobs: int = 1) -> List[Dict]:
    """One model per lam with otherwise equal settings; energy (under ``config``, default the
    NeuroSim preset) and accuracy per model, relative to lam = 0 (or the first lam). Writes
    ``sweep.csv`` and ``pareto.png`` under ``out``; returns the rows. ``jobs``: runs in parallel
    worker processes (:func:`run_grid`: the same rows as one after another)."""
    import csv

    from . import data as data_mod
    from .plots import sweep_figure
    from .io import ensure_writable_dir
    from .train import TrainConfig

    out = ensure_writable_dir(Path(out))
    base_cfg = TrainConfig(**{**base_settings, "lam": 0.0}).validate()
    dataset = data_mod.load(base_cfg.data, quick=base_cfg.quick_data)
    configs = {"energy": config or CrossbarConfig()}
    x = dataset.test.x[:images]
    settings = {k: v for k, v in dataclasses.asdict(base_cfg).items() if k != "lam"}
    runs = run_grid([(settings, float(lam), dataset, out / f"lam_{lam:g}", x, configs, progress and jobs <= 1, False)
                     for lam in lams], jobs)
    rows = []
    for run in runs:
        rows.append({"lam": run["lam"], "test_accuracy": run["test_accuracy"], "energy_j": run["energy_j"]["energy"],
                     "on_fraction": run["on_fraction"]["energy"]})
        log(f"lam={run['lam']:g}: accuracy {100 * run['test_accuracy']:.2f} %, "
            f"energy {run['energy_j']['energy'] * 1e9:.2f} nJ")
    base = next((r for r in rows if r["lam"] == 0), rows[0])
    for r in rows:
        r["energy_pct"] = energy_reduction(base["energy_j"], r["energy_j"])
        r["accuracy_pt"] = 100 * (r["test_accuracy"] - base["test_accuracy"])
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    sweep_figure(rows, out / "pareto.png", base_cfg.model)
    return rows


def _write_round(out: Path, result: Dict, configs: Dict[str, CrossbarConfig], budget: Optional[float]) -> None:
    """``round.json``, ``round.csv`` and ``round_pareto.png`` of a :func:`round_checkpoint` result."""
    import csv

    from .io import write_text_atomic
    from .plots import pareto

    points, headline = result["rounding"] + result["trained"], result["headline"]
    write_text_atomic(out / "round.json", json.dumps(result, indent=2))
    with open(out / "round.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["series", "lam", "test_accuracy", "accuracy_pt", "on_fraction", "seconds"]
                   + [f"energy_pct[{k}]" for k in configs])
        for r in points:
            w.writerow([r["label"], r["lam"], r["test_accuracy"], r["accuracy_pt"], r["on_fraction"], r["seconds"]]
                       + [r["energy_pct"][k] for k in configs])
    pareto([{**r, "energy_pct": r["energy_pct"][headline]} for r in points], out / "round_pareto.png",
           f"{result['model']}: HW-aware rounding vs HamQ training ({headline})", accuracy_budget=budget,
           series_key="label")


def round_checkpoint(checkpoint, lams: Sequence[float], out, calib: int = 256, radius: int = 8, images: int = 64,
                     config: Optional[CrossbarConfig] = None, compare=None, priced: bool = False,
                     log: Callable[[str], None] = print) -> Dict:
    """``hamq round``: HW-aware rounding (:func:`hamqcore.rounding.hw_aware_round`) of a trained
    checkpoint for every lam, on its first ``calib`` training inputs; test accuracy and energy per
    inference (``images`` test inputs) before and after, under ``config`` and, for the demo's models,
    every demo accounting. Writes ``out/lam_<lam>/checkpoint.pt`` (loadable like any checkpoint),
    ``round.json``, ``round.csv`` and ``round_pareto.png`` (with the checkpoints under ``compare``,
    e.g. a sweep's or the demo's HamQ-trained models, as a second series). ``priced``: price bits by
    their energy under the headline accounting (``crossbar=``) instead of counting them. The input
    checkpoint is never written."""
    import torch

    from ..rounding import hw_aware_round
    from . import data as data_mod
    from .io import ensure_writable_dir, save_atomic
    from .train import evaluate, load_checkpoint

    src = Path(checkpoint).resolve()
    src_file = src / "checkpoint.pt" if src.is_dir() else src
    out = ensure_writable_dir(Path(out))
    if out.resolve() == src_file.parent:
        raise ValueError(f"out {out} is the checkpoint's folder; the input checkpoint is never overwritten")
    model, cfg, ck = load_checkpoint(src_file)
    dataset = data_mod.load(cfg.data, quick=cfg.quick_data)
    calib_x = torch.from_numpy(np.ascontiguousarray(dataset.train.x[:calib]))
    x_energy = dataset.test.x[:images]
    configs = {"preset": config or CrossbarConfig()}
    if cfg.model in DEMO_CELL_BITS:
        configs.update(accounting_configs(cfg.model))
    headline = HEADLINE if cfg.model in DEMO_CELL_BITS else "preset"

    def point(m, label, lam, seconds=0.0, stats=None):
        e = measure(m, x_energy, configs)
        return {"label": label, "lam": lam, "test_accuracy": evaluate(m, dataset.test.x, dataset.test.y),
                "energy_j": {k: v["energy_j"] for k, v in e.items()},
                "on_fraction": e[headline]["on_fraction"], "seconds": seconds,
                "hw_change_pct": stats["total"]["hw_change_pct"] if stats else 0.0,
                "output_error_heldout": stats["total"].get("output_error_heldout") if stats else None}

    base = point(model, "input", 0.0)
    log(f"input {src_file}: accuracy {100 * base['test_accuracy']:.2f} %, ON {100 * base['on_fraction']:.2f} %")
    rows = []
    price_cfg = configs[headline] if priced else None
    for lam in lams:
        t0 = time.perf_counter()
        rounded, stats = hw_aware_round(model, calib_x, lam=float(lam), encoding=cfg.encoding, radius=radius,
                                        crossbar=price_cfg)
        seconds = time.perf_counter() - t0
        row = point(rounded, "rounding", float(lam), seconds, stats)
        dest = ensure_writable_dir(out / f"lam_{lam:g}")
        save_atomic({**{k: v for k, v in ck.items() if k not in ("optimizer", "scheduler", "torch_rng")},
                     "model": rounded.state_dict(),
                     "rounding": {"lam": float(lam), "radius": radius, "calib": calib, "source": str(src_file),
                                  "priced": priced}}, dest / "checkpoint.pt")
        rows.append(row)
        log(f"lam={lam:<6g} accuracy {100 * row['test_accuracy']:.2f} % "
            f"({100 * (row['test_accuracy'] - base['test_accuracy']):+.2f} pt), ON {100 * row['on_fraction']:.2f} %, "
            f"energy {energy_reduction(base['energy_j'][headline], row['energy_j'][headline]):+.1f} % ({headline}), "
            f"held-out output change {100 * (row['output_error_heldout'] or 0.0):.2f} %  "
            f"({seconds:.1f} s incl. calibration)")
    trained = []
    if compare is not None:
        for ckpt in sorted(Path(compare).rglob("checkpoint.pt")):
            if ckpt.resolve() == src_file:
                continue
            m2, c2, _ = load_checkpoint(ckpt)
            if c2.model != cfg.model or c2.data != cfg.data:
                continue
            trained.append(point(m2, "HamQ training", c2.lam))
    for r in rows + trained:
        r["accuracy_pt"] = 100 * (r["test_accuracy"] - base["test_accuracy"])
        r["energy_pct"] = {k: energy_reduction(base["energy_j"][k], v) for k, v in r["energy_j"].items()}
    result = {"checkpoint": str(src_file), "model": cfg.model, "data": cfg.data, "calib": calib, "radius": radius,
              "priced": priced, "images": len(x_energy), "headline": headline,
              "accountings": {k: c.describe() for k, c in configs.items()}, "input": base, "rounding": rows,
              "trained": trained}
    _write_round(out, result, configs, PAPER[cfg.model]["accuracy_pt"] if cfg.model in PAPER else None)
    return result
