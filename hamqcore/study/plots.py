"""Every figure hamqcore draws (matplotlib, Agg backend, PNG files): energy reports, the demo's
comparison figures and energy-accuracy Pareto curves."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from .settings import PAPER


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def energy_report(report, path, title: Optional[str] = None) -> None:
    """Stacked bars of energy per layer and component of an :class:`~hamqcore.energy.EnergyReport`."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(report.layers) + 2), 4))
    names = [l.name for l in report.layers]
    bottom = np.zeros(len(report.layers))
    for c in report.components:
        vals = np.array([l.energy[c] for l in report.layers]) * 1e9
        ax.bar(names, vals, bottom=bottom, label=c)
        bottom += vals
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(title or f"{report.model}: total {report.total_energy * 1e9:.3g} nJ/inference")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pareto(points: Sequence[Dict[str, float]], path, title: str, accuracy_budget: Optional[float] = None,
           paper: Optional[Dict[str, float]] = None, label_key: str = "lam", series_key: Optional[str] = None) -> None:
    """Energy change (%) against accuracy change (pt) of a set of models, one point each
    (``energy_pct``, ``accuracy_pt``, ``label_key``), grouped into series by ``series_key``; the
    accuracy budget as a line and the paper's operating point as a star."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups: Dict[str, List[Dict[str, float]]] = {}
    for p in points:
        groups.setdefault(str(p.get(series_key, "")) if series_key else "", []).append(p)
    for name, pts in groups.items():
        pts = sorted(pts, key=lambda r: r["energy_pct"])
        ax.plot([r["energy_pct"] for r in pts], [r["accuracy_pt"] for r in pts], "o-", label=name or None)
        for r in pts:
            ax.annotate(f"{label_key}={r[label_key]:g}" if isinstance(r[label_key], (int, float)) else str(r[label_key]),
                        (r["energy_pct"], r["accuracy_pt"]), fontsize=7)
    if accuracy_budget is not None:
        ax.axhline(accuracy_budget, color="grey", ls="--", lw=1, label=f"accuracy budget ({accuracy_budget:+.1f} pt)")
    if paper:
        ax.plot(paper["energy_pct"], paper["accuracy_pt"], "*", ms=13, color="k", label="paper")
    ax.set_xlabel("energy change vs baseline (%)")
    ax.set_ylabel("accuracy change (pt)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def demo_figures(results: Dict, out: Path) -> List[Path]:
    """The demo's figures: per experiment a Pareto plot of the whole lambda ladder under every
    accounting, the energy by component of the baseline and the chosen HamQ model, and the HW
    histograms. Returns the paths written."""
    plt = _plt()
    out = Path(out)
    written = []
    exps = results["experiments"]
    for name, e in exps.items():
        pts = [{"energy_pct": r["energy_pct"][acc], "accuracy_pt": r["accuracy_pt"], "lam": r["lam"], "accounting": acc}
               for r in e["ladder"] for acc in r["energy_pct"]]
        path = out / f"pareto_{name}.png"
        pareto(pts, path, f"{name}: the lambda ladder under each accounting", accuracy_budget=PAPER[name]["accuracy_pt"],
               paper=PAPER[name], series_key="accounting")
        written.append(path)
    # energy by component: baseline vs chosen model, per accounting
    for name, e in exps.items():
        accounts = list(e["baseline"]["energy_by_component_j"])
        fig, axes = plt.subplots(1, len(accounts), figsize=(4.2 * len(accounts), 3.8))
        chosen = e["chosen"]
        for ax, acc in zip(np.atleast_1d(axes), accounts):
            comps = list(e["baseline"]["energy_by_component_j"][acc])
            bottom = np.zeros(2)
            for c in comps:
                vals = np.array([e["baseline"]["energy_by_component_j"][acc][c],
                                 chosen["energy_by_component_j"][acc][c]]) * 1e9
                ax.bar(["baseline", f"HamQ lam={chosen['lam']:g}"], vals, bottom=bottom, label=c)
                bottom += vals
            ax.set_title(acc, fontsize=9)
            ax.set_ylabel("nJ / inference")
            ax.legend(fontsize=6)
        fig.suptitle(f"{name}: energy by component", fontsize=10)
        fig.tight_layout()
        path = out / f"energy_by_component_{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    fig, axes = plt.subplots(1, len(exps), figsize=(5 * len(exps), 3.5))
    for ax, (name, e) in zip(np.atleast_1d(axes), exps.items()):
        for label, run, dx in (("baseline", e["baseline"], -0.2), (f"HamQ lam={e['chosen']['lam']:g}", e["chosen"], 0.2)):
            hist = np.array(run["hw_histogram"], float)
            ax.bar(np.arange(len(hist)) + dx, hist / hist.sum(), 0.4, label=label)
        ax.set_xlabel(f"ON cells per weight ({e['summary']['encoding']} encoding)")
        ax.set_ylabel("fraction of weights")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "hw_histograms.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written


def sweep_figure(rows: Sequence[Dict[str, float]], path, model: str) -> None:
    """The Pareto curve of a ``hamq sweep`` with the paper's operating points."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = sorted(rows, key=lambda r: r["energy_pct"])
    ax.plot([r["energy_pct"] for r in pts], [r["accuracy_pt"] for r in pts], "o-", label=f"{model} sweep")
    for r in rows:
        ax.annotate(f"λ={r['lam']:g}", (r["energy_pct"], r["accuracy_pt"]), fontsize=7)
    for name, p in PAPER.items():
        ax.plot(p["energy_pct"], p["accuracy_pt"], "*", ms=12, label=f"paper {name} ({p['bits']}-bit)")
    ax.set_xlabel("energy change vs lam=0 (%)")
    ax.set_ylabel("accuracy change (pt)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
