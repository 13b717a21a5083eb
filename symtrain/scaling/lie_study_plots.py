"""Plots of a Lie-derivative study (:mod:`symtrain.scaling.lie_study`), written next to its
``results.csv``:

- ``lee_vs_accuracy.png`` and ``lee_vs_params.png``: each model's LEE (mean over the
  study's generators, log scale) against top-1 accuracy / parameter count (log scale),
  one marker shape per family, error bars the 95 % confidence interval over images,
  Spearman's rank correlation in the title;
- ``layer_types.png``: the signed share of ``‖L f‖²`` by layer type, averaged over each
  family's models;
- ``layerwise/<model>.png``: each model's per-unit contributions (blue adds to
  ``‖L f‖²``, red cancels), the total beside the parts, and the number of units that are
  exactly zero by construction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..lie.report import _figure
from .lie_study import LAYER_TYPES, _slug, spearman

MARKERS = "osD^vP*Xh<>p"


def _lee(row: dict[str, Any]) -> tuple[float, float] | None:
    gens = [k[4:] for k in row if k.startswith("lee_") and not k.endswith("_ci95")]
    vals = [(row[f"lee_{g}"], row.get(f"lee_{g}_ci95") or 0.0) for g in gens
            if isinstance(row.get(f"lee_{g}"), float | int)]
    if not vals:
        return None
    mean = sum(v for v, _ in vals) / len(vals)
    ci = math.sqrt(sum(c * c for _, c in vals)) / len(vals)  # CI of the mean of independent means
    return mean, ci


def _scatter(rows: list[dict[str, Any]], x_key: str, path: Path, xlabel: str, log_x: bool) -> None:
    points = [(r, _lee(r)) for r in rows if r.get("status") == "ok" and isinstance(r.get(x_key), float | int)]
    points = [(r, lee) for r, lee in points if lee is not None]
    if not points:
        return
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    families = list(dict.fromkeys(r["family"] for r, _ in points))
    for i, fam in enumerate(families):
        sel = [(r, lee) for r, lee in points if r["family"] == fam]
        ax.errorbar([r[x_key] for r, _ in sel], [lee[0] for _, lee in sel], yerr=[lee[1] for _, lee in sel],
                    fmt=MARKERS[i % len(MARKERS)], label=fam, capsize=2, alpha=0.85)
    rho = spearman([r[x_key] for r, _ in points], [lee[0] for _, lee in points])
    ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("LEE (mean over generators)")
    ax.set_title(f"LEE vs {xlabel}: Spearman ρ = {rho:.2f} over {len(points)} models", fontsize=9)
    ax.legend(fontsize=7, title="family", title_fontsize=7)
    fig.text(0.01, 0.01, "error bars: 95% CI over images", fontsize=6)
    fig.tight_layout()
    fig.savefig(path)


def _layer_types(rows: list[dict[str, Any]], path: Path) -> None:
    cols = {t: f"share_{t.split(' ')[0].replace('/', '_')}" for t in LAYER_TYPES}
    ok = [r for r in rows if r.get("status") == "ok" and any(isinstance(r.get(c), float) for c in cols.values())]
    if not ok:
        return
    families = list(dict.fromkeys(r["family"] for r in ok))
    fig = _figure(max(4.5, 1.0 * len(families) + 3), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(LAYER_TYPES)
    for j, (kind, col) in enumerate(cols.items()):
        means = []
        for fam in families:
            vals = [r[col] for r in ok if r["family"] == fam and isinstance(r.get(col), float)]
            means.append(sum(vals) / len(vals) if vals else 0.0)
        ax.bar([i + j * width for i in range(len(families))], means, width, label=kind)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(families))], families)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("share of ‖L f‖² (signed)")
    ax.set_title("Where the equivariance error comes from, by layer type", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.text(0.01, 0.01, "mean over each family's models; shares of one model sum to 1; "
             "negative: the layers cancel error made before them", fontsize=6)
    fig.tight_layout()
    fig.savefig(path)


def _model_plot(record: dict[str, Any], path: Path) -> None:
    rows = [r for r in record.get("layerwise", []) if r["layer"] != "(residual)"]
    residual = [r for r in record.get("layerwise", []) if r["layer"] == "(residual)"]
    if not rows:
        return
    gens = list(dict.fromkeys(r["generator"] for r in rows))
    fig = _figure(max(6.0, 0.13 * len(rows) / len(gens) + 3.0), 3.0 * len(gens) + 0.6)
    for gi, gen in enumerate(gens):
        ax = fig.add_subplot(len(gens), 1, gi + 1)
        sel = [r for r in rows if r["generator"] == gen]
        res = sum(r["contribution"] for r in residual if r["generator"] == gen)
        vals = [r["contribution"] for r in sel] + [res]
        total = sum(vals)
        colors = ["tab:blue" if v > 0 else "tab:red" if v < 0 else "0.7" for v in vals[:-1]] + ["tab:gray"]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.bar([len(vals) + 1], [total], color="black")
        labels = [r["layer"].removeprefix("model.") for r in sel] + ["outside units", "", "total"]
        ax.set_xticks(range(len(vals) + 2), labels, rotation=90, fontsize=5)
        big = max((abs(v) for v in vals), default=1.0) or 1.0
        ax.set_yscale("symlog", linthresh=big * 1e-4)
        ax.set_ylabel("contribution to ‖L f‖²", fontsize=7)
        zero = sum(1 for r in sel if r["contribution"] == 0.0)
        ax.set_title(f"{record['model']}: {gen} (blue adds, red cancels, gray: outside units, black: total)",
                     fontsize=7)
        if zero:
            ax.text(0.01, 0.97, f"{zero} of {len(sel)} units exactly 0 by construction (timm zero-initialises\n"
                    "the last norm of each residual branch: at random init nothing in the branch reaches the output)",
                    transform=ax.transAxes, fontsize=5, va="top")
    fig.tight_layout()
    fig.savefig(path)


def plot_study(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """Write the study's plots (see the module docstring); returns their paths."""
    written = []
    if any(isinstance(r.get("accuracy"), float) for r in rows):
        _scatter(rows, "accuracy", out / "lee_vs_accuracy.png", "top-1 accuracy", log_x=False)
        written.append(out / "lee_vs_accuracy.png")
    _scatter(rows, "params", out / "lee_vs_params.png", "parameters", log_x=True)
    _layer_types(rows, out / "layer_types.png")
    (out / "layerwise").mkdir(exist_ok=True)
    for r in rows:
        path = out / "models" / f"{_slug(r['model'])}.json"
        if r.get("status") == "ok" and path.is_file():
            _model_plot(json.loads(path.read_text()), out / "layerwise" / f"{_slug(r['model'])}.png")
    return written + [p for p in (out / "lee_vs_params.png", out / "layer_types.png") if p.is_file()]
