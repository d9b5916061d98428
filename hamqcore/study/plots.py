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
    """Stacked bars of energy per layer and component of an :class:`~hamqcore.energy.EnergyReport`:
    the components that are zero in every layer left out, the chip's (``scope="chip"``) hatched and
    summed into NeuroSim's report lines, each series its own colour, the legend beside the axes."""
    plt = _plt()
    series = [(n, m) for n, m in report.component_lines if any(l.energy[c] for l in report.layers for c in m)]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(report.layers) + 2), 4))
    names = [l.name for l in report.layers]
    bottom = np.zeros(len(report.layers))
    colors = plt.get_cmap("tab20").colors
    for i, (label, members) in enumerate(series):
        vals = np.array([sum(l.energy[c] for c in members) for l in report.layers]) * 1e9
        ax.bar(names, vals, bottom=bottom, label=label, color=colors[i % len(colors)],
               hatch="//" if label.startswith("chip") else None, edgecolor="white", linewidth=0.3)
        bottom += vals
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_title(title or f"{report.model}: total {report.total_energy * 1e9:.3g} nJ/inference")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
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


def protocol_figures(results: Dict, out: Path) -> List[Path]:
    """The study's figures: per experiment a Pareto plot (validation: energy per inference under the
    primary accounting at each model's cheapest feasible configuration vs its crossbar accuracy; one
    front per method, mean over seeds with their spread as error bars, infeasible models hollow), the
    energy by component of each method's chosen point (one panel per accounting, its own scale), and
    the HW histograms of the chosen points. Returns the paths written."""
    plt = _plt()
    out = Path(out)
    written = []
    for name, e in results["experiments"].items():
        fig, ax = plt.subplots(figsize=(8.4, 4.4))
        methods = sorted({m for sd in e["runs"] for m in e["runs"][sd]}, key=lambda m: (m != "baseline", m))
        for i, m in enumerate(methods):
            by_value: Dict = {}
            for sd, runs in e["runs"].items():
                for r in runs.get(m, []):
                    v = r["validation"]
                    pt = v["best"] or max(v["points"], key=lambda p: p["accuracy"])
                    by_value.setdefault(r["value"], []).append((pt["energy_j"] * 1e9, 100 * pt["accuracy"],
                                                               v["best"] is not None))
            xs, ys, xe, ye, feas = [], [], [], [], []
            for value, pts in sorted(by_value.items(), key=lambda kv: np.mean([p[0] for p in kv[1]])):
                a = np.array([p[:2] for p in pts])
                xs.append(a[:, 0].mean()), ys.append(a[:, 1].mean())
                xe.append(a[:, 0].std()), ye.append(a[:, 1].std())
                feas.append(all(p[2] for p in pts))
            color = f"C{i}"
            ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt="-", color=color, alpha=0.6, lw=1, capsize=2)
            for x, y, f in zip(xs, ys, feas):
                ax.plot(x, y, "o", color=color, mfc=color if f else "none", ms=6)
            ax.plot([], [], "o-", color=color, label=m)
        refs = [v for v in e["reference"].values()]
        if refs:
            ax.axhline(100 * np.mean(refs) + e["budget_pt"], color="k", ls="--", lw=0.8,
                       label=f"budget ({e['budget_pt']:+.1f} pt from the baseline's digital accuracy)")
        ax.set_xlabel("energy per inference (nJ), primary accounting, cheapest feasible configuration")
        ax.set_ylabel("crossbar accuracy, validation (%)")
        ax.set_title(f"{name}: every model of every method (hollow: no configuration meets the budget)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = out / f"pareto_{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
        # energy by component of the chosen points (first seed), one panel per accounting
        sd = sorted(e["chosen"])[0]
        chosen = {m: c for m, c in e["chosen"][sd].items() if c is not None and "test" in c}
        if chosen:
            accounts = list(next(iter(chosen.values()))["test"]["energy_by_component_j"])
            fig, axes = plt.subplots(1, len(accounts), figsize=(3.6 * len(accounts), 3.8))
            for ax, acc in zip(np.atleast_1d(axes), accounts):
                comps = list(next(iter(chosen.values()))["test"]["energy_by_component_j"][acc])
                bottom = np.zeros(len(chosen))
                for comp in comps:
                    vals = np.array([c["test"]["energy_by_component_j"][acc][comp] for c in chosen.values()]) * 1e9
                    ax.bar(list(chosen), vals, bottom=bottom, label=comp)
                    bottom += vals
                ax.set_title(f"{acc} (nJ / inference)", fontsize=8)
                ax.tick_params(axis="x", labelrotation=60, labelsize=7)
                ax.legend(fontsize=5)
            fig.suptitle(f"{name}: energy by component of each method's chosen point (seed {sd})", fontsize=9)
            fig.tight_layout()
            path = out / f"energy_by_component_{name}.png"
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(path)
    fig, axes = plt.subplots(1, len(results["experiments"]), figsize=(5.5 * len(results["experiments"]), 3.6))
    for ax, (name, e) in zip(np.atleast_1d(axes), results["experiments"].items()):
        sd = sorted(e["chosen"])[0]
        picks = [(m, c) for m, c in e["chosen"][sd].items() if c is not None]
        width = 0.8 / max(1, len(picks))
        for i, (m, c) in enumerate(picks):
            hist = np.array(c["hw_histogram"], float)
            ax.bar(np.arange(len(hist)) + (i - len(picks) / 2) * width, hist / max(1.0, hist.sum()), width, label=m)
        ax.set_xlabel("ON cells per weight (differential encoding)")
        ax.set_ylabel("fraction of weights")
        ax.set_title(f"{name}: chosen points, seed {sd}", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path = out / "hw_histograms.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)
    return written
