"""The study's protocol (README "The study's protocol"), the pieces :func:`hamqcore.study.experiments.demo`
runs: the sealed splits, the crossbar evaluation of one model at its cheapest configuration, the choice
of each method's operating point on the validation split, and the verdict over seeds. Every number it
is run with is in :data:`hamqcore.study.settings.PROTOCOL`, fixed before any result.

    train / validation / test     training never sees the test split (it is not handed over); every
                                  choice (lam, bits, pruning, ADC references, configuration) is made
                                  on the validation split; the test split is read once per chosen point
    budget                        the paper's accuracy drop, measured ON THE CROSSBAR, from the
                                  baseline's digital validation accuracy (same seed)
    configuration                 the cheapest configuration of the same search space for every model
                                  whose crossbar validation accuracy meets the budget
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..crossbar import CrossbarConfig
from ..energy import calibrate_adc, cheapest_config, cheapest_meeting, crossbar_accuracy, estimate_energy
from .data.containers import DataSet, Split, stratified_split


def sealed(dataset: DataSet, fraction: float, seed: int) -> DataSet:
    """The data set training gets: its training split less a seeded, stratified validation split
    (when the data set has no validation split of its own), and NO test split (an empty one)."""
    train, val = dataset.train, dataset.val
    if val is None or len(val) == 0:
        keep, held = stratified_split(train.y, fraction, seed)
        train, val = _take(train, keep), _take(train, held)
    empty = Split(dataset.test.x[:0], dataset.test.y[:0])
    return dataclasses.replace(dataset, train=train, val=val, test=empty)


def _take(split: Split, idx: np.ndarray) -> Split:
    return Split(split.x[idx], split.y[idx], None if split.groups is None else split.groups[idx])


def tensors(split: Split, start: int, stop: int):
    x = torch.from_numpy(np.ascontiguousarray(split.x[start:stop]))
    return x, torch.from_numpy(np.asarray(split.y[start:stop]))


def validation_point(model, val: Split, base: CrossbarConfig, space: Dict[str, Sequence],
                     accuracy_target: Optional[float], calibration: int, inputs: int, energy_inputs: int) -> Dict:
    """One model on the validation split: the cheapest configuration of ``space`` (over ``base``) whose
    crossbar accuracy on ``inputs`` validation examples meets ``accuracy_target``; calibrated
    references on the ``calibration`` examples before them; energy on the first ``energy_inputs``.
    ``accuracy_target=None``: every configuration's accuracy and energy, the target set later
    (:func:`apply_target`)."""
    x_cal, _ = tensors(val, 0, calibration)
    x, y = tensors(val, calibration, calibration + inputs)
    r = cheapest_config(model, x, y, base, 0.0 if accuracy_target is None else accuracy_target, space=space,
                        energy_inputs=energy_inputs, calibration=x_cal)
    points = [{"config": p.config.describe(), "overrides": _overrides(p.config, base), "accuracy": p.accuracy,
               "energy_j": p.energy} for p in r.points]
    v = {"points": points, "best": None, "target": None, "skipped": [[o, why] for o, why in r.skipped]}
    return v if accuracy_target is None else apply_target(v, accuracy_target)


def apply_target(v: Dict, accuracy_target: float) -> Dict:
    """A :func:`validation_point` record with ``accuracy_target`` applied: its cheapest configuration
    meeting the target (:func:`hamqcore.energy.cheapest_meeting`, :func:`~hamqcore.energy.cheapest_config`'s
    choice). The demo validates its ladders before the baselines set the budget."""
    pts = v["points"]
    i = cheapest_meeting([p["accuracy"] for p in pts], [p["energy_j"] for p in pts], accuracy_target)
    v["target"] = accuracy_target
    v["best"] = None if i is None else {k: pts[i][k] for k in ("overrides", "accuracy", "energy_j", "config")}
    return v


def best_within(v: Dict, subspace: Optional[Dict[str, Sequence]] = None) -> Optional[Dict]:
    """A model's cheapest configuration meeting its target, among the configurations of ``subspace``
    (field -> allowed values; a field a point does not override keeps the base's value, allowed)."""
    if subspace is None:
        return v["best"]
    pts = [p for p in v["points"] if all(p["overrides"].get(k, vals[0]) in vals for k, vals in subspace.items())]
    i = cheapest_meeting([p["accuracy"] for p in pts], [p["energy_j"] for p in pts], v["target"])
    return None if i is None else pts[i]


def _overrides(config: CrossbarConfig, base: CrossbarConfig) -> Dict[str, object]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(base, f.name)}


def test_point(model, val: Split, test: Split, config: CrossbarConfig, calibration: int, test_inputs: int,
               energy_inputs: int, accountings: Dict[str, CrossbarConfig]) -> Dict:
    """The final step for one chosen (model, configuration): crossbar accuracy on the test split (the
    references calibrated on the validation split, as chosen), energy per inference on test inputs
    under the chosen configuration and under every secondary accounting."""
    refs = None
    if config.adc_reference == "calibrated":
        refs = calibrate_adc(model, tensors(val, 0, calibration)[0], config)
    x, y = tensors(test, 0, test_inputs)
    acc = crossbar_accuracy(model, x, y, config, references=refs)
    xe = x[:energy_inputs]
    primary = estimate_energy(model, xe, config)
    energies = {"primary": primary.total_energy}
    components = {"primary": primary.energy}
    for name, cfg in accountings.items():
        rep = estimate_energy(model, xe, cfg)
        energies[name], components[name] = rep.total_energy, rep.energy
    return {"crossbar_accuracy": acc, "energy_j": energies, "energy_by_component_j": components,
            "on_fraction": primary.on_fraction, "config": config.describe()}


def choose(points: List[Dict], subspace: Optional[Dict[str, Sequence]] = None) -> Optional[Dict]:
    """A method's operating point: of its ladder's points that meet the budget on the validation
    split (a configuration of ``subspace`` found, :func:`best_within`), the one with the least energy,
    with that configuration as ``point["best"]``; None when none does."""
    feasible = [dict(p, best=best_within(p["validation"], subspace)) for p in points]
    feasible = [p for p in feasible if p["best"] is not None]
    return min(feasible, key=lambda p: p["best"]["energy_j"]) if feasible else None


def mean_std(values: Sequence[float]) -> Dict[str, float]:
    v = [float(x) for x in values if x is not None and not math.isnan(x)]
    if not v:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def verdict(summary: Dict[str, Dict], methods: Sequence[str], rivals: Sequence[str]) -> List[str]:
    """Per HamQ method, against each rival (the bit-width ladder, pruning), both at their operating points
    (each met the budget on the validation split): "beats" where its mean test energy is lower by more
    than the two spreads together (standard deviations over seeds), "loses to" where higher by more,
    else "ties with"; the test crossbar accuracies are printed beside, not judged (the budget was met on
    the validation split). With one seed only which uses less energy, said not to be a verdict.
    Methods with no feasible point are said to be so."""
    lines = []
    for m in methods:
        a = summary.get(m)
        for r in rivals:
            b = summary.get(r)
            if not a or not b or a["energy_j"]["n"] == 0 or b["energy_j"]["n"] == 0:
                lines.append(f"{m} vs {r}: not comparable (no point within the budget for "
                             f"{m if not a or a['energy_j']['n'] == 0 else r})")
                continue
            ea, eb = a["energy_j"], b["energy_j"]
            spread = ea["std"] + eb["std"]
            change = 100 * (ea["mean"] - eb["mean"]) / eb["mean"]
            one = min(ea["n"], eb["n"]) < 2
            if one:          # no spread to judge a difference by
                word = "uses less energy than" if ea["mean"] < eb["mean"] else "uses more energy than"
            elif ea["mean"] < eb["mean"] - spread:
                word = "beats"
            elif ea["mean"] > eb["mean"] + spread:
                word = "loses to"
            else:
                word = "ties with"
            lines.append(f"{m} {word} {r}: energy {change:+.1f} % ({ea['mean'] * 1e9:.2f} vs {eb['mean'] * 1e9:.2f} nJ, "
                         f"spread {spread * 1e9:.2f} nJ), crossbar accuracy {100 * a['accuracy']['mean']:.2f} vs "
                         f"{100 * b['accuracy']['mean']:.2f} %" + (" (one seed: no spread, not a verdict)" if one else ""))
    return lines
