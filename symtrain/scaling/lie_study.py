"""The Lie-derivative study (Gruver et al., ICLR 2023): many models, one table.

A study file (YAML, :class:`StudySpec`) names the models (timm names or patterns), their
weights (random, the hub, or a folder of files named after the models), the images
(synthetic, an ``ImageFolder``, or the digits set), the generators, the norm and the
output to measure (logits, probabilities, an encoder's features, a named submodule's
output, a key of a dict output). :func:`run_study` measures each model:

- the local equivariance error (LEE) per generator, its mean over images with a 95 %
  confidence interval (``1.96 ·`` the standard error over images);
- the layer-wise attribution of the first layer-wise generators, its units grouped by
  layer type (:func:`layer_type`: patch embedding, convolution, linear, pointwise
  nonlinearity, normalisation, attention, pooling/downsampling, and what lies outside
  every unit: residual additions and position embeddings), as signed shares of
  ``‖L f‖²``;
- top-1 accuracy when the images have labels, the parameter count and FLOPs per image.

**Records.** ``DIR/models/<model>.json`` holds each model's detail (written atomically:
a model with a file is finished, and a resumed study skips it); ``DIR/results.csv`` has
one row per model and is rebuilt from those files after every model. A model that cannot
be built, loaded or measured is tried once more, then recorded as ``failed`` with its
error; the study goes on. The models run through :func:`symtrain.scaling.sweep.run_sweep`
(the executor of ``symtrain sweep``: locally one at a time, or one Ray task per model).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from torch import Tensor, nn

from ..errors import SymmetryError
from ..lie.layerwise import default_units
from ..records import json_text

log = logging.getLogger(__name__)

#: Layer types, in report order; ``outside units`` is the layer-wise residual: operations
#: in no unit (residual additions, position-embedding additions, reshapes).
LAYER_TYPES = ("patch embedding", "convolution", "linear", "pointwise nonlinearity", "normalisation",
               "attention", "pooling/downsampling", "outside units (residual adds)", "other")

_NONLINEAR = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
              nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Mish, nn.PReLU, nn.CELU, nn.SELU)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
         nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle)
_NORM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)


def layer_type(module: nn.Module) -> str:
    """The layer type of a unit (one of :data:`LAYER_TYPES`), from its class (timm's
    classes by name, so timm need not be imported)."""
    name = type(module).__name__
    if name in ("PatchEmbed", "HybridEmbed", "PatchEmbedding", "ConvPatchEmbed", "ConvStem"):
        return "patch embedding"
    if "Attention" in name or isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, _CONV):
        return "convolution"
    if isinstance(module, nn.Linear) or name in ("Mlp", "GluMlp", "SwiGLU", "GatedMlp", "ConvMlp",
                                                  "ClassifierHead", "NormMlpClassifierHead", "Affine"):
        return "linear"
    if isinstance(module, _NONLINEAR) or name in ("GELUTanh", "QuickGELU", "Swish", "HardSwish", "HardMish"):
        return "pointwise nonlinearity"
    if isinstance(module, _NORM) or "Norm" in name:
        return "normalisation"
    if isinstance(module, _POOL) or "Pool" in name or name in ("BlurPool2d", "AntiAliasDownsampleLayer"):
        return "pooling/downsampling"
    return "other"


#: Classes kept whole as one unit in a study: patch embeddings and attention (their
#: inside is one layer type); everything else is split down to leaf modules, so an
#: MLP's linear layers and its nonlinearity are attributed apart.
STUDY_UNIT_NAMES = frozenset({"PatchEmbed", "HybridEmbed"})
_NOOP = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)


def study_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Units for a study's layer-wise attribution (see :data:`STUDY_UNIT_NAMES`): the
    walk of :func:`~symtrain.lie.default_units`, keeping patch embeddings and attention
    whole and leaving out flattening too."""
    def whole(module: nn.Module) -> bool:
        name = type(module).__name__
        return name in STUDY_UNIT_NAMES or "Attention" in name

    return default_units(model, whole=whole, skip=_NOOP)


# --- the study file ----------------------------------------------------------------------
class Images(BaseModel):
    """Where the images come from: ``synthetic: N`` smooth random images, ``folder:``
    an ImageFolder (class subfolders give labels; a flat folder has none), or
    ``dataset: digits`` (the 1,797 real digits, upsampled, with labels)."""

    model_config = ConfigDict(extra="forbid")
    synthetic: int | None = Field(None, gt=0)
    folder: str | None = None
    dataset: Literal["digits"] | None = None
    size: int = Field(64, gt=0)
    limit: int | None = Field(None, gt=0, description="at most this many images")

    def model_post_init(self, _):
        given = [k for k in ("synthetic", "folder", "dataset") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"images: give exactly one of synthetic, folder, dataset (got {given or 'none'})")


class StudySpec(BaseModel):
    """A study file. Keys: ``models`` (timm names or ``fnmatch`` patterns),
    ``pretrained`` (false: random init; true: the hub; a folder of weights files named
    after the models), ``images``, ``generators`` (names or ``all``), ``norm``,
    ``output`` (``logits``, ``probabilities``, ``features``, ``module:<name>``,
    ``key:<name>``), ``layerwise`` (generators to attribute; empty: none), ``probes``,
    ``batch_size``, ``device``, ``seed``, ``num_classes`` and ``model_args`` (given to
    timm), ``weights`` (model name → a weights file, overriding ``pretrained``),
    ``imports`` (modules or ``.py`` files that register timm models, e.g. small configs
    with ``timm.models.register_model``, imported before the models are built)."""

    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=1)
    pretrained: bool | str = False
    images: Images
    generators: list[str] | Literal["all"] = "all"
    norm: Literal["squared", "abs"] = "squared"
    output: str = "probabilities"
    layerwise: list[str] = Field(default_factory=lambda: ["translation_x"])
    probes: int = Field(8, gt=0)
    batch_size: int = Field(8, gt=0)
    device: str = "cpu"
    seed: int = 0
    num_classes: int | None = Field(None, gt=0)
    model_args: dict[str, Any] = Field(default_factory=dict)
    progress: bool = True
    weights: dict[str, str] = Field(default_factory=dict, description="model name -> weights file")
    imports: list[str] = Field(default_factory=list, description="modules or .py files registering timm models")

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        if value in ("logits", "probabilities", "features") or re.fullmatch(r"(module|key):.+", value):
            return value
        raise ValueError("output must be logits, probabilities, features, module:<name> or key:<name>")


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file; errors name the key (``images.size: ...``)."""
    import yaml

    from ..paths import input_file

    path = input_file(path, "study")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SymmetryError(f"{path}: not YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SymmetryError(f"{path}: a study file is a mapping with models, images, ...")
    try:
        return StudySpec(**raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "study"
        raise SymmetryError(f"{path}: {where}: {first['msg']}") from None


def find_study(name: str | Path) -> Path:
    """A study file: a path as given, or the name of a provided one
    (``symtrain/recipes/studies/<name>.yaml``)."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    provided = Path(__file__).resolve().parents[1] / "recipes" / "studies" / f"{name}.yaml"
    if provided.is_file():
        return provided
    known = sorted(p.stem for p in provided.parent.glob("*.yaml"))
    raise SymmetryError(f"study {name!r}: no such file, and no provided study of that name "
                        f"(provided: {', '.join(known) or 'none'})")


def expand_models(patterns: list[str], imports: list[str] = ()) -> list[str]:
    """timm names for the names and patterns (``resnet*``), in order, without repeats."""
    import timm

    from ..user_code import import_user_code

    for target in imports:
        import_user_code(target)
    out: list[str] = []
    for p in patterns:
        found = timm.list_models(p) if any(c in p for c in "*?[") and "@" not in p else [p]
        out.extend(found)
    return list(dict.fromkeys(out))


def family(name: str) -> str:
    """The architecture family of a timm name: its first word without sizes
    (``resnet18`` → ``resnet``, ``vit_tiny_patch16_224`` → ``vit``; a variant label
    after ``@`` is ignored)."""
    return re.sub(r"\d+[a-z]?$", "", name.split("@")[0].split("_")[0].split(".")[0]) or name


# --- outputs -----------------------------------------------------------------------------
class OutputOf(nn.Module):
    """The part of ``model``'s output a study measures: ``logits`` / ``probabilities``
    (the model's output; the softmax is taken by the report), ``features`` (an encoder's
    pooled features: ``forward_head(forward_features(x), pre_logits=True)`` of a timm
    model), ``module:<name>`` (the output of a named submodule, read by a forward hook),
    ``key:<name>`` (one entry of a dict output)."""

    def __init__(self, model: nn.Module, output: str):
        super().__init__()
        self.model, self.output = model, output
        if output.startswith("module:"):
            name = output.split(":", 1)[1]
            modules = dict(model.named_modules())
            if name not in modules:
                near = [m for m in modules if name.split(".")[-1] in m][:5]
                raise SymmetryError(f"output: the model has no submodule {name!r}"
                                    + (f"; e.g. {', '.join(near)}" if near else ""))
            self._target = modules[name]
        if output == "features" and not hasattr(model, "forward_features"):
            raise SymmetryError("output: features needs a model with forward_features (a timm model)")

    def forward(self, x: Tensor) -> Tensor:
        kind, _, arg = self.output.partition(":")
        if kind == "features":
            feats = self.model.forward_features(x)
            head = getattr(self.model, "forward_head", None)
            return head(feats, pre_logits=True) if head is not None else feats
        if kind == "module":
            seen: list[Tensor] = []
            handle = self._target.register_forward_hook(lambda m, i, o: seen.append(o))
            try:
                self.model(x)
            finally:
                handle.remove()
            return seen[-1]
        y = self.model(x)
        if kind == "key":
            if not isinstance(y, dict) or arg not in y:
                keys = list(y) if isinstance(y, dict) else type(y).__name__
                raise SymmetryError(f"output: key {arg!r} is not in the model's output ({keys})")
            return y[arg]
        return y


# --- one model ---------------------------------------------------------------------------
def _weights_file(folder: str, name: str) -> str:
    for suffix in (".safetensors", ".pth", ".pt", ".bin"):
        path = Path(folder) / f"{name}{suffix}"
        if path.is_file():
            return str(path)
    raise SymmetryError(f"pretrained: no weights file for {name} in {folder} "
                        "(expected <model>.safetensors/.pth/.pt/.bin)")


def build_model(name: str, spec: StudySpec) -> nn.Module:
    from ..lie.report import load_timm_model
    from ..user_code import import_user_code

    for target in spec.imports:
        import_user_code(target)
    kwargs = dict(spec.model_args)
    if spec.num_classes is not None:
        kwargs["num_classes"] = spec.num_classes
    arch = name.split("@", 1)[0]  # "resnet18@step400": the architecture, then a label of the variant
    if name in spec.weights:
        return load_timm_model(arch, checkpoint=spec.weights[name], **kwargs)
    if isinstance(spec.pretrained, str):
        return load_timm_model(arch, checkpoint=_weights_file(spec.pretrained, name), **kwargs)
    return load_timm_model(arch, pretrained=bool(spec.pretrained), **kwargs)


def load_study_images(spec: StudySpec) -> tuple[Tensor, Tensor | None]:
    """``(images (N, 3, S, S), labels (N,) or None)``."""
    im = spec.images
    if im.synthetic is not None:
        from ..lie.images import synthetic_images

        return synthetic_images(im.synthetic, im.size, seed=spec.seed), None
    if im.dataset == "digits":
        from ..data.digits import digits_dataset

        x, y = digits_dataset(im.size, seed=spec.seed)["test"]
        x = (x - x.mean()) / x.std().clamp_min(1e-6)
        return (x[: im.limit], y[: im.limit]) if im.limit else (x, y)
    return _image_folder(im.folder, im.size, im.limit)


def _image_folder(folder: str, size: int, limit: int | None) -> tuple[Tensor, Tensor | None]:
    from PIL import Image

    from ..lie.images import IMAGE_SUFFIXES
    from ..paths import input_folder

    root = input_folder(folder, "images.folder")
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    files = ([(f, i) for i, c in enumerate(classes) for f in sorted(c.iterdir())] if classes
             else [(f, None) for f in sorted(root.iterdir())])
    files = [(f, c) for f, c in files if f.suffix.lower() in IMAGE_SUFFIXES][:limit]
    if not files:
        raise SymmetryError(f"images.folder: no images in {folder}")
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    xs = []
    for f, _ in files:
        img = Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(size, size, 3)
        xs.append((t.permute(2, 0, 1).float() / 255 - mean) / std)
    labels = torch.tensor([c for _, c in files]) if classes else None
    return torch.stack(xs), labels


def measure_model(name: str, spec: StudySpec) -> dict[str, Any]:
    """One model's record (see the module docstring): LEE per generator with a 95 % CI,
    layer-type shares, accuracy, parameters, FLOPs per image."""
    from ..lie.report import lie_report
    from ..metrics.flops import count_flops

    start = time.perf_counter()
    torch.manual_seed(spec.seed)
    model = build_model(name, spec).to(spec.device).eval()
    images, labels = load_study_images(spec)
    target = OutputOf(model, spec.output).eval()
    batches = list(images.split(spec.batch_size))
    units = [(f"model.{n}", m) for n, m in study_units(model)] if spec.output in (
        "logits", "probabilities", "features") else None
    report = lie_report(target, batches, spec.generators, probabilities=spec.output == "probabilities",
                        layerwise=bool(spec.layerwise), layerwise_transforms=spec.layerwise or None,
                        probes=spec.probes, norm=spec.norm, device=spec.device, units=units,
                        generator=torch.Generator().manual_seed(spec.seed), progress=spec.progress)
    record: dict[str, Any] = {"model": name, "family": family(name), "status": "ok",
                              "params": sum(p.numel() for p in model.parameters()),
                              "images": int(images.shape[0]), "output": spec.output, "norm": spec.norm,
                              "method": report.meta.get("method")}
    x0 = images[:1].to(spec.device)
    with torch.no_grad():
        record["flops"] = count_flops(lambda: model(x0))
    if labels is not None:
        with torch.no_grad():
            logits = torch.cat([model(b.to(spec.device)) for b in batches]).cpu()
        if isinstance(logits, Tensor) and logits.dim() == 2 and logits.shape[1] > int(labels.max()):
            record["accuracy"] = float((logits.argmax(1) == labels).double().mean())
    key = spec.norm
    record["lee"] = {r["generator"]: {"mean": r[f"{key}_mean"], "ci95": 1.96 * r[f"{key}_sem"],
                                      "median": r[f"{key}_median"]} for r in report.summary}
    record["layerwise"] = report.layerwise
    record["units"] = {n: layer_type(m) for n, m in (units or [])}
    record["shares"], record["zero_units"] = layer_shares(report.layerwise, record["units"])
    record["seconds"] = time.perf_counter() - start
    return record


def layer_shares(rows: list[dict[str, Any]], units: dict[str, str]) -> tuple[dict[str, float], int]:
    """Signed shares of ``‖L f‖²`` by layer type over the layer-wise rows (all generators
    together; the residual row is ``outside units``), and the number of units whose
    contribution is exactly zero (e.g. timm zero-initialises the last norm of each
    residual branch, so at random init those branches contribute exactly 0)."""
    totals = {t: 0.0 for t in LAYER_TYPES}
    zero = 0
    for r in rows:
        kind = "outside units (residual adds)" if r["layer"] == "(residual)" else units.get(r["layer"], "other")
        totals[kind] += r["contribution"]
        zero += r["layer"] != "(residual)" and r["contribution"] == 0.0
    whole = sum(totals.values())
    shares = {t: (v / whole if whole else 0.0) for t, v in totals.items()}
    return shares, int(zero)


# --- the study ---------------------------------------------------------------------------
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json_text(data, indent=2, default=str))
    os.replace(tmp, path)


def study_point(point: dict, out_dir: Path, *, spec: StudySpec, models_dir: str) -> dict[str, Any]:
    """``run_point`` of the sweep executor: measure one model (tried twice), write its
    JSON, return a short row for the executor's own progress file."""
    name = point["model"]
    log.info("lie-study: %s", name)
    path = Path(models_dir) / f"{_slug(name)}.json"
    if path.is_file():  # finished in an earlier run whose progress row was lost
        return {"status": json.loads(path.read_text()).get("status", "ok")}
    error = ""
    for attempt in (1, 2):
        try:
            record = measure_model(name, spec)
            break
        except Exception as err:  # noqa: BLE001  (a model that fails is a row, not the end)
            error = f"{type(err).__name__}: {err}"
            log.warning("lie-study: %s failed (attempt %d of 2): %s", name, attempt, error)
            log.debug("%s", traceback.format_exc())
    else:
        record = {"model": name, "family": family(name), "status": "failed", "error": error}
    _write_json(path, record)
    return {"status": record["status"]}


def run_study(spec: StudySpec, out_dir: str | Path, *, backend: str = "local",
              num_cpus: int | None = None) -> list[dict[str, Any]]:
    """Measure every model of ``spec`` not yet measured in ``out_dir`` and rebuild
    ``results.csv`` and the plots; returns the rows."""
    from ..paths import output_folder
    from .sweep import run_sweep

    out = output_folder(out_dir, "out")
    models_dir = out / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(spec.model_dump_json(indent=2))
    names = expand_models(spec.models, spec.imports)
    if not names:
        raise SymmetryError(f"models: {spec.models} match no timm model")
    point = partial(study_point, spec=spec, models_dir=str(models_dir))
    run_sweep({"grid": {"model": names}}, point, out / "progress", backend=backend, num_cpus=num_cpus)
    rows = write_results(out, names)
    try:
        from .lie_study_plots import plot_study

        plot_study(out, rows)
    except ImportError as err:  # matplotlib is optional
        log.warning("lie-study: no plots (%s)", err)
    return rows


def study_rows(out: Path, names: list[str]) -> list[dict[str, Any]]:
    """The flat rows of ``results.csv`` from the per-model records."""
    rows = []
    for name in names:
        path = out / "models" / f"{_slug(name)}.json"
        if not path.is_file():
            continue
        rec = json.loads(path.read_text())
        row = {k: rec.get(k) for k in ("model", "family", "status", "params", "flops", "accuracy",
                                        "images", "output", "norm", "method", "zero_units", "seconds", "error")}
        for gen, v in rec.get("lee", {}).items():
            row[f"lee_{gen}"], row[f"lee_{gen}_ci95"] = v["mean"], v["ci95"]
        for kind, share in rec.get("shares", {}).items():
            row[f"share_{kind.split(' ')[0].replace('/', '_')}"] = share
        rows.append(row)
    return rows


def write_results(out: Path, names: list[str]) -> list[dict[str, Any]]:
    """Rebuild ``results.csv`` (atomically) from ``models/*.json``."""
    rows = study_rows(out, names)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    tmp = out / "results.csv.tmp"
    tmp.write_text(text.getvalue())
    os.replace(tmp, out / "results.csv")
    return rows


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 pairs."""
    if len(a) < 3:
        return math.nan
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)

    def ranks(t: Tensor) -> Tensor:
        order = t.argsort()
        r = torch.empty_like(t)
        r[order] = torch.arange(len(t), dtype=torch.float64)
        for v in t.unique():  # ties share their mean rank
            same = t == v
            r[same] = r[same].mean()
        return r

    ra, rb = ranks(ta), ranks(tb)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-30))
