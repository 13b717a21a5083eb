"""Plots of power-law fits (:func:`symtrain.scaling.fit.fit_all`): loss vs compute with
the fitted frontiers, loss vs dataset size and vs epochs, and the compute-optimal model
size, each with its 68 % bootstrap bands. matplotlib (the ``[scaling]`` extra) is imported
when a plot is drawn; figures are written with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fit import Row, interval_text


def _axes(title: str, xlabel: str, ylabel: str, width: float = 7.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, 5), dpi=120)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.25)
    return fig, ax


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_compute(rows: list[Row], fits: dict, path: Path, loss_label: str) -> Path:
    """Loss vs compute: runs as dots, frontier configurations ringed, fitted frontier
    lines with 68 % bootstrap bands; one colour per method."""
    fig, ax = _axes("Test loss vs training compute", "training compute C [FLOPs]", loss_label)
    for i, (method, fit) in enumerate(fits["methods"].items()):
        colour = f"C{i}"
        runs = [r for r in rows if r["method"] == method]
        ax.scatter([r["flops"] for r in runs], [r["test_loss"] for r in runs], s=12, alpha=0.35, color=colour)
        comp = fit["compute"]
        if "b" not in comp:
            ax.scatter([], [], color=colour, label=f"{method} (no fit: {comp['error']})")
            continue
        front = np.array(comp["frontier"])
        ax.scatter(front[:, 0], front[:, 1], s=40, facecolors="none", edgecolors=colour, linewidths=1.2)
        grid = np.array(comp["grid"])
        offset = f" + {comp['c']:.3g}" if comp["offset"] else ""
        ax.plot(grid, [comp["A"] * (x / comp["x0"]) ** (-comp["b"]) + comp["c"] for x in grid], color=colour,
                label=f"{method}: L ∝ C^(−b){offset}, b = {interval_text(comp, 'b')}")
        if comp["band"]:
            ax.fill_between(grid, *comp["band"], color=colour, alpha=0.2, linewidth=0)
    ax.scatter([], [], s=12, color="grey", alpha=0.5, label="runs (dots), frontier (rings)")
    ax.fill_between([], [], [], color="grey", alpha=0.3, label="68% bootstrap band")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _short(label: str) -> str:
    return label.replace("dataset_size", "D").replace("params", "N")


def plot_curves(fits: dict, name: str, path: Path, title: str, xlabel: str, loss_label: str) -> Path:
    """Loss vs ``name`` ("data" or "epochs") curves: measured points and fitted power
    laws with 68 % bootstrap bands, one colour per method, one marker per fixed setting
    (legend outside the axes)."""
    from matplotlib.lines import Line2D

    fig, ax = _axes(title, xlabel, loss_label, width=10.5)
    markers = "osD^v<>ph*P"
    empty, handles = True, []
    for i, (method, fit) in enumerate(fits["methods"].items()):
        for j, (label, curve) in enumerate(fit.get(name, {}).items()):
            empty = False
            colour, pts = f"C{i}", np.array(curve["points"])
            grid = np.array(curve["grid"])
            offset = f", c = {curve['c']:.3g}" if curve["offset"] else ""
            ax.plot(grid, [curve["A"] * (x / curve["x0"]) ** (-curve["b"]) + curve["c"] for x in grid],
                    color=colour, alpha=0.7)
            ax.plot(pts[:, 0], pts[:, 1], markers[j % len(markers)], color=colour, ms=5)
            handles.append(Line2D([], [], color=colour, marker=markers[j % len(markers)], ms=5,
                                  label=f"{method}, {_short(label)}: b = {interval_text(curve, 'b')}{offset}"))
            if curve["band"]:
                ax.fill_between(grid, *curve["band"], color=colour, alpha=0.15, linewidth=0)
    if empty:
        ax.text(0.5, 0.5, "no curve with at least 2 values to fit", transform=ax.transAxes, ha="center")
    else:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  title="fit L = a·x^(−b) [+ c]; D samples, N parameters", title_fontsize=7)
    return _save(fig, path)


def plot_n_opt(fits: dict, path: Path) -> Path:
    """Best model size vs compute per method: filled dots where the optimum is bracketed
    (with the fitted ``N_opt ∝ C^e`` and its band when there are enough), open triangles
    where the best size is the smallest (▽) or largest (△) of the sizes whose runs span
    that budget."""
    fig, ax = _axes("Compute-optimal model size (best size per compute budget)",
                    "training compute C [FLOPs]", "best model size N [parameters]")
    empty, banded = True, False
    for i, (method, fit) in enumerate(fits["methods"].items()):
        opt, colour = fit["n_opt"], f"C{i}"
        best = np.array(opt.get("best_sizes") or [], dtype=float).reshape(-1, 3)
        if len(best):
            empty = False
            ax.plot(best[:, 0], best[:, 1], "-", color=colour, alpha=0.4, linewidth=1)
            inner = best[best[:, 2] == 0]
            for edge, marker in ((1, "^"), (-1, "v")):
                rows = best[best[:, 2] == edge]
                if len(rows):
                    ax.plot(rows[:, 0], rows[:, 1], marker, mfc="none", color=colour, ms=6)
            if len(inner):
                ax.plot(inner[:, 0], inner[:, 1], "o", color=colour, ms=5)
            label = f"{method}: best size per budget"
            if "e" in opt:
                grid = np.array(opt["grid"])
                ax.plot(grid, opt["k"] * grid ** opt["e"], color=colour)
                label = f"{method}: N_opt ∝ C^e, e = {interval_text(opt, 'e')}"
                if opt["band"]:
                    ax.fill_between(grid, *opt["band"], color=colour, alpha=0.2, linewidth=0)
                    banded = True
            ax.plot([], [], "-o", color=colour, label=label)
    if empty:
        ax.text(0.5, 0.5, "fewer than 2 model sizes span any budget", transform=ax.transAxes, ha="center")
    else:
        ax.plot([], [], "^", mfc="none", color="grey", label="largest size spanning C is best (optimum may lie beyond)")
        ax.plot([], [], "v", mfc="none", color="grey", label="smallest size spanning C is best")
        if banded:
            ax.fill_between([], [], [], color="grey", alpha=0.3, label="68% bootstrap band")
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_fits(rows: list[Row], fits: dict, out: Path, *, data_at: str = "epochs",
              loss_label: str = "test loss (MSE)") -> list[Path]:
    """The four plots of a fit in ``out``: ``loss_vs_compute.png``, ``loss_vs_data.png``
    (at fixed epochs or steps, as ``data_at`` was fitted), ``loss_vs_epochs.png`` and
    ``n_opt_vs_compute.png``; returns their paths."""
    fixed = "fixed epochs" if data_at == "epochs" else "fixed steps"
    return [plot_compute(rows, fits, out / "loss_vs_compute.png", loss_label),
            plot_curves(fits, "data", out / "loss_vs_data.png", f"Test loss vs dataset size ({fixed}, per model size)",
                        "training set size D [samples]", loss_label),
            plot_curves(fits, "epochs", out / "loss_vs_epochs.png", "Test loss vs epochs (per dataset and model size)",
                        "epochs [passes over the training set]", loss_label),
            plot_n_opt(fits, out / "n_opt_vs_compute.png")]
