"""The studies behind ``hamq demo`` and ``hamq sweep``, callable from Python with plain arguments;
each returns its results as a dict (and writes files only where ``out`` is given).

    from hamqcore.study.experiments import demo
    results = demo("hamq_out", quick=True)
"""
from __future__ import annotations

import dataclasses
import json
import textwrap
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..crossbar import CrossbarConfig
from ..energy import energy_reduction
from . import distributed
from .io import write_text_atomic
from .protocol import apply_target, choose, mean_std, sealed, test_point, validation_point, verdict
from .settings import (
    ACCOUNTINGS,
    DEMO,
    DEMO_CELL_BITS,
    FINE_TUNE_EPOCHS,
    FROM_BASELINE,
    HAMQ_METHODS,
    HEADLINE,
    METHODS,
    METHODS_QUICK,
    ON_TOP,
    PAPER,
    PROTOCOL,
    PROTOCOL_QUICK,
    PROTOCOL_SCALE,
    PROTOCOL_SCALE_QUICK,
    RIVALS,
    ROUND,
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


def _point_settings(name: str, seed: int, method: str, value, quick: bool, baseline_ckpt: Optional[str],
                    task: Optional[Dict] = None) -> Dict:
    """The training settings of one point of the protocol: the experiment's, at the demo's scale (or
    the paper's task, ``task``), with the method's setting (every method from the same quantizer,
    schedule and seed)."""
    settings = dict(DEMO[name], **(PROTOCOL_SCALE_QUICK if quick else PROTOCOL_SCALE)[name])
    settings.update(task or {})
    settings.update(seed=seed, weighting="params", lam=0.0)
    if method == "hamq_hw":
        settings.update(lam=float(value))
    elif method == "hamq_priced":
        settings.update(lam=float(value), weighting="crossbar", crossbar=dict(PROTOCOL["primary"]))
    elif method == "bits":
        settings.update(w_bits=int(value))
    elif method == "prune":
        settings.update(init=baseline_ckpt, prune=float(value), epochs=FINE_TUNE_EPOCHS, warmup_epochs=0,
                        ramp_epochs=0)
    return settings


def _protocol_data(settings: Dict, protocol: Dict):
    from . import data as data_mod

    full = data_mod.load(settings["data"], quick=settings.get("quick_data", False))
    return full, sealed(full, protocol["validation_fraction"], protocol["split_seed"])


def _point_job(job: Dict) -> Dict:
    """One point of the protocol (runs in a worker process): the model (trained, pruned and fine-tuned,
    or rounded), its digital validation accuracy and its cheapest configuration on the validation split.
    The test split is never loaded into what training sees."""
    import torch

    from ..nn import hw_stats
    from ..rounding import hw_aware_round
    from .io import ensure_writable_dir, save_atomic
    from .train import TrainConfig, evaluate, load_checkpoint, train, use_threads

    use_threads(job["threads"])
    protocol, name, method, value = job["protocol"], job["name"], job["method"], job["value"]
    settings = _point_settings(name, job["seed"], method, value, job["quick"], job.get("baseline_ckpt"),
                               job.get("task"))
    settings["threads"] = job["threads"]     # worker processes side by side: no oversubscription
    _, data = _protocol_data(settings, protocol)
    out = Path(job["out"])
    t0 = time.perf_counter()
    if method == "round" or method in ON_TOP:   # the baseline, or a HamQ model (ON_TOP), rounded
        source = job["baseline_ckpt"] if method == "round" else job["source_ckpt"]
        lam = float(value) if method == "round" else ROUND["on_hamq_lam"]
        model, cfg, ck = load_checkpoint(source)
        calib = torch.from_numpy(np.ascontiguousarray(data.train.x[:ROUND["calib"]]))
        model, _ = hw_aware_round(model, calib, lam=lam, encoding=cfg.encoding, radius=ROUND["radius"][name])
        save_atomic({**{k: v for k, v in ck.items() if k not in ("optimizer", "scheduler", "torch_rng")},
                     "model": model.state_dict(), "rounding": {"lam": lam, "source": source}},
                    ensure_writable_dir(out) / "checkpoint.pt")
        w_bits, encoding = cfg.w_bits, cfg.encoding
    else:
        cfg = TrainConfig(**settings)
        model = train(cfg, out, dataset=data, progress=False, log=lambda _: None).model
        w_bits, encoding = cfg.w_bits, cfg.encoding
    train_s = time.perf_counter() - t0
    val_acc = evaluate(model, data.val.x, data.val.y)
    v = None
    # a baseline is validated once its accuracy set the budget; a target None is applied when the
    # baselines are known (apply_target)
    if method != "baseline":
        v = validation_point(model, data.val, accounting(PROTOCOL["primary"]), protocol["space"], job["target"],
                             protocol["calibration_inputs"], protocol["validation_inputs"], protocol["energy_inputs"])
    stats = hw_stats(model, w_bits, encoding)["total"]
    return {"name": name, "seed": job["seed"], "method": method, "value": value, "checkpoint": str(out / "checkpoint.pt"),
            "validation_accuracy": val_acc, "validation": v, "mean_hw": stats["mean_hw"],
            "hw_histogram": stats["histogram"][: w_bits + 1], "w_bits": w_bits,
            "seconds": {"model": train_s, "validation": time.perf_counter() - t0 - train_s}}


def _test_job(job: Dict) -> Dict:
    """The final step for one chosen point (a worker process): the test split, read once."""
    from .train import load_checkpoint, use_threads

    use_threads(job["threads"])
    protocol = job["protocol"]
    model, cfg, _ = load_checkpoint(job["checkpoint"])
    full, data = _protocol_data(dataclasses.asdict(cfg), protocol)
    config = dataclasses.replace(accounting(PROTOCOL["primary"]), **job["overrides"])
    secondary = {k: accounting(ACCOUNTINGS[k]) for k in protocol["secondary"]}
    n_test = min(protocol["test_inputs"], len(full.test))
    return test_point(model, data.val, full.test, config, protocol["calibration_inputs"], n_test,
                      protocol["energy_inputs"], secondary)


def accounting(spec: Dict) -> CrossbarConfig:
    spec = dict(spec)
    return CrossbarConfig.preset(spec.pop("preset"), **spec)


def _pool_map(fn, jobs: List[Dict], n: int, log: Callable[[str], None], what: str,
              grid: distributed.Grid) -> List[Dict]:
    """``fn`` over ``jobs`` in ``n`` spawned worker processes (or here when n = 1), in order, with a
    progress line and an ETA per finished job. In a grid of ranks (:func:`distributed.grid`) this rank
    runs the jobs i with i % size == rank, and every rank returns every job's result."""
    mine = list(range(grid.rank, len(jobs), grid.size))
    t0, done, out = time.perf_counter(), 0, {}
    tag = f"rank {grid.rank}: " if grid.size > 1 else ""

    def tick(i, r):
        nonlocal done
        done += 1
        out[i] = r
        el = time.perf_counter() - t0
        eta = el / done * (len(mine) - done)
        j = jobs[i]
        log(f"   [{tag}{what} {done}/{len(mine)}] {j['name']} seed {j['seed']} {j['method']}"
            f"{'' if j.get('value') is None else ' ' + format(j['value'], 'g')}  ({el / 60:.1f} min, ETA {eta / 60:.1f} min)")

    if n <= 1 or len(mine) <= 1:
        for i in mine:
            tick(i, fn(jobs[i]))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(fn, jobs[i]): i for i in mine}
            for f in as_completed(futures):
                tick(futures[f], f.result())
    for part in grid.gather(out):
        out.update(part)
    return [out[i] for i in range(len(jobs))]


def demo(out="hamq_out", quick: bool = False, seeds: int = 1, jobs: int = 1,
         experiments: Sequence[str] = ("resnet18", "ds_cnn"), log: Callable[[str], None] = print,
         tasks: Optional[Dict[str, Dict]] = None, grid: Optional[distributed.Grid] = None) -> Dict:
    """The paper's comparison under the study's protocol (:mod:`hamqcore.study.protocol`,
    :data:`~hamqcore.study.settings.PROTOCOL`), on offline data: per experiment and seed the baseline and
    every method's ladder (:data:`~hamqcore.study.settings.METHODS`), each model at its cheapest
    configuration that meets the paper's accuracy budget ON THE CROSSBAR on the validation split; per
    method its lowest-energy point within the budget; the test split read once per chosen point; mean
    and spread over ``seeds`` seeds and the verdict against the bit-width ladder and pruning. Writes
    checkpoints, ``results.json`` and figures under ``out``; returns the results. ``jobs``: points
    run in parallel worker processes; every point trains and is measured on one thread, so the results
    are the same for any ``jobs`` (torch's reductions on two threads round differently).
    ``tasks``: per experiment, training settings that replace the demo's (the paper's tasks:
    :data:`~hamqcore.study.settings.PAPER_TASKS`, e.g. CIFAR-10 from a folder, ``device="cuda"``).
    ``grid``: the ranks of a torchrun launch (:func:`~hamqcore.study.distributed.grid`) share the
    points, each rank with ``jobs`` workers; rank 0 writes results.json, results.md and the figures."""
    from .io import ensure_writable_dir, write_text_atomic
    from .plots import protocol_figures

    protocol = PROTOCOL_QUICK if quick else PROTOCOL
    seed_list = list(range(int(seeds)))
    methods_all = METHODS_QUICK if quick else METHODS
    grid = grid or distributed.Grid()
    out = ensure_writable_dir(Path(out))
    threads = 1   # every point on one thread: the results never depend on jobs or ranks
    t_start = time.perf_counter()
    results: Dict = {"quick": quick, "seeds": seed_list, "experiments": {},
                     "protocol": {**{k: v for k, v in protocol.items() if k != "seeds"},
                                  "methods": {n: methods_all[n] for n in experiments}, "budget_pt":
                                  {n: PAPER[n]["accuracy_pt"] for n in experiments},
                                  "primary_config": accounting(PROTOCOL["primary"]).describe(),
                                  "secondary_configs": {k: accounting(ACCOUNTINGS[k]).describe()
                                                        for k in protocol["secondary"]},
                                  "scale": {n: (PROTOCOL_SCALE_QUICK if quick else PROTOCOL_SCALE)[n] for n in experiments},
                                  "fine_tune_epochs": FINE_TUNE_EPOCHS, "round": ROUND, "tasks": tasks or {}}}
    # The stages run across experiments, each stage's jobs in one pool (longest first), so one task's
    # long training runs overlap the other's: the order of execution never changes a result.
    exps: Dict[str, Dict] = {}
    for name in experiments:
        budget = PAPER[name]["accuracy_pt"]
        task = (tasks or {}).get(name)
        s0 = _point_settings(name, 0, "baseline", None, quick, None, task)
        full, data = _protocol_data(s0, protocol)
        log(f"\n== {name}: {s0['w_bits']}-bit on {s0['data']}: {len(data.train)} train / {len(data.val)} validation / "
            f"{len(full.test)} test (sealed until the last step); budget {budget:+.1f} pt on the crossbar ==")
        exps[name] = {"splits": {"train": len(data.train), "validation": len(data.val), "test": len(full.test)},
                      "budget_pt": budget, "reference": {}, "runs": {}, "chosen": {}}

    def point(name, sd, method, value, target, **checkpoints):    # one point's job (_point_job runs it)
        folder = "baseline" if value is None else f"{method}_{value:g}"
        task = (tasks or {}).get(name)
        return {**({} if task is None else {"task": task}), **checkpoints, "name": name, "seed": sd, "method": method,
                "value": value, "quick": quick, "protocol": protocol, "target": target, "threads": threads,
                "out": str(out / name / f"seed{sd}" / folder)}

    def budget_target(name, sd):  # the budget on the crossbar: the baseline's digital validation accuracy + budget
        return exps[name]["reference"][sd] + exps[name]["budget_pt"] / 100

    def train_cost(job):   # a static estimate of a job's time, for the order (never its result)
        if job.get("kind") == "baseline_validation" or job["method"] == "round" or job["method"] in ON_TOP:
            return 0
        epochs = _point_settings(job["name"], job["seed"], job["method"], job["value"], quick, "",
                                 (tasks or {}).get(job["name"]))["epochs"]
        return epochs * exps[job["name"]]["splits"]["train"]

    def run_stage(fn, stage_jobs, what):   # longest first; results in the jobs' own order
        order = sorted(range(len(stage_jobs)), key=lambda i: -train_cost(stage_jobs[i]))
        done = dict(zip(order, _pool_map(fn, [stage_jobs[i] for i in order], jobs, log, what, grid)))
        return [done[i] for i in range(len(stage_jobs))]

    def add_run(r):
        exps[r["name"]]["runs"][r["seed"]].setdefault(r["method"], []).append(r)

    # 1. the baselines (the budget's reference, and the models pruning and rounding start from) and every
    # ladder trained from scratch (its cheapest configuration for every target: the budget is applied once
    # the baselines are known, apply_target)
    stage1 = [point(name, sd, "baseline", None, None) for name in experiments for sd in seed_list]
    stage1 += [point(name, sd, method, v, None) for name in experiments for sd in seed_list
               for method, (_, values) in methods_all[name].items()
               if method not in ON_TOP and method not in FROM_BASELINE for v in values]
    done1 = run_stage(_point_job, stage1, "point")
    for b in (r for r in done1 if r["method"] == "baseline"):
        exps[b["name"]]["reference"][b["seed"]] = b["validation_accuracy"]
        exps[b["name"]]["runs"][b["seed"]] = {"baseline": [b]}
    for r in (r for r in done1 if r["method"] != "baseline"):
        apply_target(r["validation"], budget_target(r["name"], r["seed"]))
        add_run(r)
    # 2. what starts from a trained model: the baselines' cheapest configurations (their accuracy set
    # the budget), pruning and rounding of the baseline, rounding on top of each HamQ model
    stage2 = []
    for name in experiments:
        for sd in seed_list:
            b_ckpt = exps[name]["runs"][sd]["baseline"][0]["checkpoint"]
            stage2.append({"kind": "baseline_validation", "name": name, "seed": sd, "method": "baseline",
                           "checkpoint": b_ckpt, "protocol": protocol, "target": budget_target(name, sd),
                           "threads": threads})
            stage2 += [point(name, sd, method, v, budget_target(name, sd), baseline_ckpt=b_ckpt)
                       for method, (_, values) in methods_all[name].items() if method in FROM_BASELINE for v in values]
            stage2 += [point(name, sd, method, src["value"], budget_target(name, sd), source_ckpt=src["checkpoint"])
                       for method, source in ON_TOP.items() if method in methods_all[name]
                       for src in exps[name]["runs"][sd].get(source, []) if src["value"] in methods_all[name][method][1]]
    for r in run_stage(_stage2_job, stage2, "point"):
        if r["method"] == "baseline":
            exps[r["name"]]["runs"][r["seed"]]["baseline"][0]["validation"] = r["validation"]
        else:
            add_run(r)
    # 3. each method's operating point on the validation split; the test split read once per chosen point
    test_jobs, keyed = [], {}
    for name in experiments:
        exp = exps[name]
        for sd in seed_list:
            for method, points in exp["runs"][sd].items():
                c = choose(points)
                exp["chosen"].setdefault(sd, {})[method] = None if c is None else {
                    "value": c["value"], "checkpoint": c["checkpoint"], "overrides": c["best"]["overrides"],
                    "validation_accuracy": c["best"]["accuracy"], "validation_energy_j": c["best"]["energy_j"],
                    "mean_hw": c["mean_hw"], "hw_histogram": c["hw_histogram"]}
                if c is None:
                    continue
                key = (c["checkpoint"], json.dumps(c["best"]["overrides"], sort_keys=True, default=str))
                if key not in keyed:
                    keyed[key] = len(test_jobs)
                    test_jobs.append({"name": name, "seed": sd, "method": method, "value": c["value"],
                                      "protocol": protocol, "checkpoint": c["checkpoint"],
                                      "overrides": c["best"]["overrides"], "threads": threads})
                exp["chosen"][sd][method]["test_job"] = keyed[key]
    tested = _pool_map(_test_job, test_jobs, jobs, log, "test", grid)
    for name in experiments:
        exp = exps[name]
        for sd in seed_list:
            for c in exp["chosen"][sd].values():
                if c is not None:
                    c["test"] = tested[c.pop("test_job")]
        exp["summary"] = _summarise(exp, seed_list, "chosen")
        exp["verdict"] = verdict(exp["summary"], [m for m in HAMQ_METHODS if m in methods_all[name]], RIVALS)
        results["experiments"][name] = exp
    results["seconds"] = time.perf_counter() - t_start
    if grid.main:
        write_text_atomic(out / "results.json", json.dumps(results, indent=2, default=_json_default))
        write_text_atomic(out / "results.md", markdown_report(results))
        protocol_figures(results, out)
    grid.close()
    return results


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o).__name__)


def _stage2_job(job: Dict) -> Dict:
    """A worker's job after the baselines: a baseline's cheapest configuration, or a ladder point."""
    if job.get("kind") != "baseline_validation":
        return _point_job(job)
    from .train import use_threads

    use_threads(job["threads"])
    return {"name": job["name"], "seed": job["seed"], "method": "baseline",
            "validation": _baseline_validation(job["checkpoint"], job["protocol"], job["target"])}


def _baseline_validation(checkpoint: str, protocol: Dict, target: float) -> Dict:
    from .train import load_checkpoint

    model, cfg, _ = load_checkpoint(checkpoint)
    _, data = _protocol_data(dataclasses.asdict(cfg), protocol)
    return validation_point(model, data.val, accounting(PROTOCOL["primary"]), protocol["space"], target,
                            protocol["calibration_inputs"], protocol["validation_inputs"], protocol["energy_inputs"])


def _summarise(exp: Dict, seeds: Sequence[int], key: str = "chosen") -> Dict:
    """Per method, over seeds: test crossbar accuracy, test energy (primary), the change against the
    same seed's baseline, and how many seeds found a point within the budget."""
    out = {}
    chosen = exp[key]
    methods = sorted({m for sd in seeds for m in chosen.get(sd, {})}, key=lambda m: (m != "baseline", m))
    for m in methods:
        picks = [chosen[sd].get(m) for sd in seeds]
        got = [p for p in picks if p is not None and "test" in p]
        base = {sd: chosen[sd].get("baseline") for sd in seeds}
        pct = [100 * (p["test"]["energy_j"]["primary"] - base[sd]["test"]["energy_j"]["primary"])
               / base[sd]["test"]["energy_j"]["primary"]
               for sd, p in zip(seeds, picks) if p is not None and "test" in p and base[sd] and "test" in base[sd]]
        out[m] = {"energy_j": mean_std([p["test"]["energy_j"]["primary"] for p in got]),
                  "accuracy": mean_std([p["test"]["crossbar_accuracy"] for p in got]),
                  "energy_pct": mean_std(pct), "feasible_seeds": len(got),
                  "values": [p["value"] for p in got]}
    return out


def _by_seed(d: Dict, sd):
    """A per-seed entry of the results, from memory (int keys) or from results.json (str keys)."""
    return d[sd] if sd in d else d[str(sd)]


def _pm(ms: Dict[str, float], scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """A :func:`~hamqcore.study.protocol.mean_std` summary as "mean ± std" (times ``scale``); "–" when empty."""
    if not ms["n"]:
        return "–"
    return f"{ms['mean'] * scale:.{digits}f} ± {ms['std'] * scale:.{digits}f}{unit}"


def _point(run: Dict, overrides: Dict) -> Optional[Dict]:
    """A ladder point's validation result at one configuration of the search space (``{}``: the
    primary configuration; else the point whose overrides include these)."""
    v = run.get("validation") or {}
    return next((p for p in v.get("points", []) if (p["overrides"] == overrides if not overrides else
                                                     all(p["overrides"].get(k) == x for k, x in overrides.items()))),
                None)


def seed_models(demo_out, task: str = "resnet18", seed: str = "0"):
    """The trained models of one seed of a finished ``hamq demo`` run, as post-hoc checks read them:
    ``(models, x, results)`` with models a list of (folder name, model, its TrainConfig), the baseline
    first and then the other points in name order, x the run's energy inputs (its protocol's first
    ``energy_inputs`` test inputs, as the study measured them) and results the run's results.json."""
    import torch

    from .data import load
    from .train import load_checkpoint

    demo_out = Path(demo_out)
    folder = demo_out / task / f"seed{seed}"
    if not (demo_out / "results.json").is_file() or not folder.is_dir():
        raise ValueError(f"demo_out={str(demo_out)!r} holds no finished demo run with task {task!r} and seed "
                         f"{seed!r} (its results.json and {task}/seed{seed}/)")
    results = json.loads((demo_out / "results.json").read_text())
    names = ["baseline"] + sorted(p.name for p in folder.iterdir() if p.name != "baseline" and p.is_dir())
    models = [(name, *load_checkpoint(folder / name / "checkpoint.pt")[:2]) for name in names]
    cfg = models[0][2]
    data = load(cfg.data, quick=cfg.quick_data)
    x = torch.from_numpy(np.ascontiguousarray(data.test.x[:results["protocol"]["energy_inputs"]]))
    return models, x, results


def markdown_report(results: Dict) -> str:
    """The protocol's results as markdown tables (README "Results"), one per experiment: per method
    the seeds within the budget, the chosen settings, test crossbar accuracy and energy (mean ± std
    over seeds), the best validation accuracy of its ladder at each configuration of the search space,
    and every setting's validation energy against the same seed's baseline at the primary
    configuration; then the verdict lines. Everything from ``results`` (results.json)."""
    seeds = results["seeds"]
    space = results["protocol"]["space"]
    configs = [{}] + [{k: v} for k, vals in space.items() for v in vals
                      if v != PROTOCOL["primary"].get(k)]
    names = ["primary" if not c else ", ".join(f"{k}={v}" for k, v in c.items()) for c in configs]
    names = [n.replace("adc_reference=", "") + (" references" if n != "primary" else "") for n in names]
    out = []
    for name, e in results["experiments"].items():
        refs = [_by_seed(e["reference"], sd) for sd in seeds]
        sp = e["splits"]
        out.append(f"**{name}**: {sp['train']} train / {sp['validation']} validation / {sp['test']} test examples; "
                   f"baseline digital validation accuracy {100 * np.mean(refs):.2f} % (seeds "
                   f"{', '.join(f'{100 * r:.2f}' for r in refs)}); budget: crossbar validation accuracy ≥ that "
                   f"{e['budget_pt']:+.1f} pt.\n")
        out.append("| method | seeds within the budget | chosen setting | crossbar test accuracy % | test energy nJ | "
                   + " | ".join(f"best validation accuracy %, {n}" for n in names)
                   + " | validation energy vs the baseline (primary configuration), per setting |")
        out.append("| --- " * (6 + len(names)) + "|")
        for m, s in e["summary"].items():
            runs = [_by_seed(e["runs"], sd).get(m, []) for sd in seeds]
            best = []
            for c in configs:
                per_seed = [max((p["accuracy"] for r in rs if (p := _point(r, c)) is not None), default=None)
                            for rs in runs]
                best.append(_pm(mean_std(per_seed), 100))
            deltas = []
            if m != "baseline":
                values = sorted({r["value"] for rs in runs for r in rs}, key=lambda v: -v if m == "bits" else v)
                for v in values:
                    pct = []
                    for sd, rs in zip(seeds, runs):
                        base = _point(_by_seed(e["runs"], sd)["baseline"][0], {})
                        pt = next((_point(r, {}) for r in rs if r["value"] == v), None)
                        if base and pt:
                            pct.append(100 * (pt["energy_j"] - base["energy_j"]) / base["energy_j"])
                    deltas.append(f"{v:g}: {_pm(mean_std(pct), unit=' %')}")
            chosen = ", ".join(format(v, "g") for v in s["values"] if v is not None) or "–"
            feasible = s["feasible_seeds"]
            out.append(f"| {m} | {feasible}/{len(seeds)} | {chosen} | {_pm(s['accuracy'], 100, 2)} | "
                       f"{_pm(s['energy_j'], 1e9, 0)} | "
                       + " | ".join(best) + f" | {'; '.join(deltas) if deltas else '0'} |")
        out.append("")
        out += [f"* {v}" for v in e["verdict"]]
        out.append("")
    return "\n".join(out)


def demo_table(results: Dict) -> str:
    """The demo's table, at most 100 columns: per experiment and method the chosen point's test
    crossbar accuracy and energy (mean +- standard deviation over seeds), and the verdict; in the
    search space."""
    lines = []
    for name, e in results["experiments"].items():
        n = len(results["seeds"])
        for suffix, what in (("", "search space: calibrated or per-column references"),):
            lines.extend(textwrap.wrap(f"{name} ({what}): budget {e['budget_pt']:+.1f} pt on the crossbar, {n} "
                                       "seed(s), test split read once per point", 98, subsequent_indent="  "))
            width = max(12, *(len(m) for m in e["summary" + suffix]))    # the method column
            lines.append(f"  {'method':<{width}} {'setting':>8} {'crossbar acc. %':>17} {'energy nJ':>18} "
                         f"{'vs baseline %':>15}")
            for m, s in e["summary" + suffix].items():
                vals = ",".join(format(v, "g") for v in s["values"]) if m != "baseline" else "-"
                acc, en, pct = s["accuracy"], s["energy_j"], s["energy_pct"]
                if s["feasible_seeds"] == 0:
                    lines.append(f"  {m:<{width}} {'-':>8}   no point within the budget")
                    continue
                # no baseline within the budget in a seed: no change against it to give
                vs = (f"{pct['mean']:>+7.1f} +- {pct['std']:<4.1f}" if pct["n"] else f"{'-':>7}")
                lines.append(f"  {m:<{width}} {vals[:8]:>8} {100 * acc['mean']:>9.2f} +- {100 * acc['std']:<4.2f} "
                             f"{en['mean'] * 1e9:>9.2f} +- {en['std'] * 1e9:<6.2f} {vs}")
            for v in e["verdict" + suffix]:
                lines.extend(textwrap.wrap(v, 98, initial_indent="  ", subsequent_indent="    "))
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


def round_model(model, dataset, lams: Sequence[float], out, calib: int = 256, radius: int = 8, images: int = 64,
                config: Optional[CrossbarConfig] = None, priced: bool = False, label: str = "model",
                log: Callable[[str], None] = print) -> Dict:
    """``hamq round --factory``: HW-aware rounding of a model of one's own (quantized layers), on the
    first ``calib`` training inputs of ``dataset``; per lam its test accuracy (the data set's labels),
    energy per inference on ``images`` test inputs under ``config``, the held-out output change, and
    ``out/lam_<lam>/state_dict.pt``. The input model is never changed."""
    import torch

    from ..energy import estimate_energy
    from ..rounding import hw_aware_round
    from .io import ensure_writable_dir, save_atomic
    from .train import evaluate

    config = config or CrossbarConfig()
    out = ensure_writable_dir(Path(out))
    calib_x = torch.from_numpy(np.ascontiguousarray(dataset.train.x[:calib]))
    x_energy = torch.from_numpy(np.ascontiguousarray(dataset.test.x[:images]))

    def point(m, lam, stats=None):
        rep = estimate_energy(m, x_energy, config)
        return {"lam": lam, "test_accuracy": evaluate(m, dataset.test.x, dataset.test.y),
                "energy_j": rep.total_energy, "on_fraction": rep.on_fraction,
                "output_error_heldout": stats["total"].get("output_error_heldout") if stats else None}

    base = point(model, 0.0)
    rows = []
    for lam in lams:
        rounded, stats = hw_aware_round(model, calib_x, lam=float(lam), radius=radius, crossbar=config if priced else None)
        row = point(rounded, float(lam), stats)
        row["energy_pct"] = energy_reduction(base["energy_j"], row["energy_j"])
        save_atomic(rounded.state_dict(), ensure_writable_dir(out / f"lam_{lam:g}") / "state_dict.pt")
        rows.append(row)
        log(f"lam={lam:<6g} accuracy {100 * row['test_accuracy']:.2f} %, ON {100 * row['on_fraction']:.2f} %, "
            f"energy {row['energy_pct']:+.1f} %, held-out output change {100 * (row['output_error_heldout'] or 0):.2f} %")
    result = {"model": label, "data": dataset.name, "calib": calib, "radius": radius, "priced": priced,
              "config": config.describe(), "input": base, "rounding": rows}
    write_text_atomic(out / "round.json", json.dumps(result, indent=2))
    return result


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
