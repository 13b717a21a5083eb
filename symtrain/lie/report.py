"""Lie-derivative report of a model over a data set: per-example and aggregated figures
for every generator, optional layer-wise attribution, written as CSV, JSON and PNG."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..domains import OPTIONAL_COUNT, POSITIVE_INT, Count, OneOf, check_args
from ..errors import SymmetryError
from ..models import timm_loader
from ..models.timm_loader import WeightsUnavailableError as WeightsUnavailableError  # re-exported
from ..paths import output_file, output_folder
from ..records import json_text
from .derivative import NORMS, lie_derivatives, per_example_norm, resolve_method
from .generators import resolve_generators
from .layerwise import layerwise_lie


def load_timm_model(name: str, *, checkpoint: str | os.PathLike | None = None,
                    pretrained: bool = True, **kwargs: Any) -> nn.Module:
    """A timm model in eval mode, with weights from ``checkpoint`` (its classifier kept
    when ``num_classes`` is given), the hub (``pretrained=True``), or random
    (``pretrained=False``); see :func:`symtrain.models.timm_loader.load_timm_model`."""
    return timm_loader.load_timm_model(name, pretrained=pretrained, checkpoint=checkpoint, **kwargs).eval()


@dataclass
class LieReport:
    """Figures of one report. ``per_example``: rows ``{example, generator, squared, abs}``;
    ``summary``: per generator, mean / standard error / median of each norm;
    ``layerwise``: rows of :meth:`LayerwiseLie.table` averaged over batches."""

    per_example: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    layerwise: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``lie_per_example.csv``, ``lie_summary.csv``, ``lie_layerwise.csv`` (if any),
        ``lie_report.json``, ``lie_summary.png`` and one ``lie_layerwise_<generator>.png``
        per generator. Returns the paths written."""
        out = output_folder(out_dir, "out_dir")
        out.mkdir(parents=True, exist_ok=True)
        paths = [_write_csv(out / "lie_per_example.csv", self.per_example),
                 _write_csv(out / "lie_summary.csv", self.summary)]
        if self.layerwise:
            paths.append(_write_csv(out / "lie_layerwise.csv", self.layerwise))
        report = {"meta": self.meta, "summary": self.summary, "layerwise": self.layerwise,
                  "per_example": self.per_example}
        (out / "lie_report.json").write_text(json_text(report, indent=1, default=_jsonable))
        paths.append(out / "lie_report.json")
        paths.append(plot_summary(self.summary, out / "lie_summary.png", norm=self.meta.get("norm", "squared")))
        for gen in dict.fromkeys(r["generator"] for r in self.layerwise):
            rows = [r for r in self.layerwise if r["generator"] == gen]
            paths.append(plot_layerwise(rows, out / f"lie_layerwise_{gen}.png"))
        return paths


def _jsonable(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.tolist()
    return str(v)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_summary(summary: list[dict[str, Any]], path: str | os.PathLike, norm: str = "squared") -> Path:
    """Bar chart of the mean Lie derivative per generator (log scale), with standard errors."""
    output_file(path, "path")
    fig = _figure(max(4.0, 0.55 * len(summary) + 1.5), 3.6)
    ax = fig.add_subplot()
    names = [r["generator"] for r in summary]
    means = [max(r[f"{norm}_mean"], 1e-30) for r in summary]
    errs = [r[f"{norm}_sem"] for r in summary]
    ax.bar(range(len(names)), means, yerr=errs, color="tab:blue", capsize=2)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("‖L f‖²" if norm == "squared" else "mean |L f|")
    ax.set_title("Lie derivative per generator")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_layerwise(rows: list[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Bar chart of each unit's (signed) contribution to ``‖L f‖²``."""
    output_file(path, "path")
    rows = [r for r in rows if r["layer"] != "(residual)"] + [r for r in rows if r["layer"] == "(residual)"]
    fig = _figure(max(5.0, 0.16 * len(rows) + 2.0), 4.0)
    ax = fig.add_subplot()
    vals = [r["contribution"] for r in rows]
    colors = ["tab:red" if v < 0 else "tab:blue" for v in vals]
    ax.bar(range(len(rows)), vals, color=colors)
    ax.set_xticks(range(len(rows)), [r["layer"] for r in rows], rotation=90, fontsize=6)
    ax.set_ylabel("contribution to ‖L f‖²")
    ax.set_yscale("symlog", linthresh=max(1e-12, max((abs(v) for v in vals), default=1) * 1e-4))
    ax.set_title(f"layer-wise Lie derivative: {rows[0]['generator'] if rows else ''}")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _batches(data: Any) -> Iterable[Tensor]:
    if isinstance(data, Tensor):
        yield data
        return
    for batch in data:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if isinstance(batch, dict):
            batch = batch.get("image", batch.get("pixel_values"))
        if not isinstance(batch, Tensor):
            raise SymmetryError("a data batch must be images (B, C, H, W) or (images, labels), "
                                f"got {type(batch).__name__}")
        yield batch


@check_args(probes=POSITIVE_INT, layerwise_batches=Count(0), order=OneOf(2, 4), max_batches=OPTIONAL_COUNT)
def lie_report(model: nn.Module, data: Any, transforms: Any = "all", *, probabilities: bool = True,
               layerwise: bool = False, layerwise_transforms: Sequence[str] | None = None,
               probes: int = 20, layerwise_batches: int = 1, norm: str = "squared",
               order: int = 2, padding: str = "replicate", output: str | None = None,
               max_batches: int | None = None, progress: bool = False,
               generator: torch.Generator | None = None, device: Any = None,
               out_dir: str | os.PathLike | None = None, method: str = "auto",
               units: Sequence[tuple[str, nn.Module]] | None = None) -> LieReport:
    """Lie derivatives of ``model`` over ``data`` for every generator, with both norms.

    Args:
        model: an image model (eval mode is the caller's; :func:`load_timm_model` sets it).
        data: images ``(N, C, H, W)`` or an iterable of batches (``(images, labels)`` too).
        transforms: names, ``"all"`` or generators (see :func:`lie_derivatives`).
        probabilities: differentiate ``softmax(model(x))`` (as the paper) instead of logits.
        layerwise: also attribute ``layerwise_transforms`` (default: the same ones) over
            the units of the model, on the first ``layerwise_batches`` batches, with
            ``probes`` random probes.
        norm: the norm plotted and summarised first; both are always in the tables.
        out_dir: if given, :meth:`LieReport.save` writes the files there.
        method: ``"jvp"``, ``"fd"`` or ``"auto"`` (see :func:`~symtrain.lie.resolve_method`),
            for the end-to-end and the layer-wise derivatives.
        units: ``(name, module)`` units of the layer-wise attribution (default
            :func:`~symtrain.lie.default_units` of ``model``).
    """
    if norm not in NORMS:
        raise SymmetryError(f"norm must be one of {NORMS}, got {norm!r}")
    if out_dir is not None:
        output_folder(out_dir, "out_dir")  # a path of the wrong kind, before the work
    gens = resolve_generators(transforms, order=order, padding=padding)
    f = (lambda u: model(u).softmax(-1)) if probabilities else model
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with timm and accelerate
        tqdm = None
    batches = _batches(data)
    bar = tqdm(batches, desc="lie", unit="batch", disable=not progress) if tqdm else batches
    rows: list[dict[str, Any]] = []
    used = method
    layer_rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    seen = 0
    for i, x in enumerate(bar):
        if max_batches is not None and i >= max_batches:
            break
        if device is not None:
            x = x.to(device)
        with torch.no_grad():
            used = resolve_method(model, x, method)
            d = lie_derivatives(f, x, gens, output=output, method=used)
        with torch.no_grad():
            sq = {k: per_example_norm(v, "squared") for k, v in d.items()}
            ab = {k: per_example_norm(v, "abs") for k, v in d.items()}
        for j in range(x.shape[0]):
            for name in d:
                rows.append({"example": seen + j, "generator": name,
                             "squared": float(sq[name][j]), "abs": float(ab[name][j])})
        if layerwise and i < layerwise_batches:
            names = layerwise_transforms or [g.name for g in gens if hasattr(g, "spatial")]
            for lname in names:
                lw = layerwise_lie(model, x, resolve_generators([lname], order=order, padding=padding)[0],
                                   probes=probes, units=units,
                                   output_fn=(lambda y: y.softmax(-1)) if probabilities else None,
                                   output=output, generator=generator, method=used)
                for r in lw.table():
                    layer_rows.setdefault((lname, r["layer"]), []).append(r)
        seen += x.shape[0]
    if not rows:
        raise SymmetryError("the data held no images")
    summary = _summarise(rows)
    layer_table = [{**rs[0], **{k: sum(r[k] for r in rs) / len(rs) for k in
                                ("contribution", "contribution_probe", "norm_probe")}}
                   for rs in layer_rows.values()]
    meta = {"examples": seen, "probabilities": probabilities, "norm": norm, "order": order,
            "padding": padding, "probes": probes if layerwise else 0,
            "translation_units": "pixels of the input", "method": used}
    report = LieReport(rows, summary, layer_table, meta)
    if out_dir is not None:
        report.save(out_dir)
    return report


def _summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in dict.fromkeys(r["generator"] for r in rows):
        entry: dict[str, Any] = {"generator": name}
        for key in NORMS:
            vals = torch.tensor([r[key] for r in rows if r["generator"] == name], dtype=torch.float64)
            entry[f"{key}_mean"] = float(vals.mean())
            entry[f"{key}_sem"] = float(vals.std() / math.sqrt(len(vals))) if len(vals) > 1 else 0.0
            entry[f"{key}_median"] = float(vals.median())
        entry["examples"] = len(vals)
        out.append(entry)
    return out
