"""Typed recipes: YAML loading, budget presets, ``--set a.b=v`` overrides, validation.

A recipe is one YAML file with five sections and budget presets::

    name: nbody_ps
    description: Transformer + probabilistic symmetrization on 5-body Coulomb dynamics
    data:            {name: nbody, batch_size: 100, ...dataset arguments}
    model:           {name: nbody_transformer, ...model arguments}
    symmetrization:  {method: ps, samples: 20, eval_samples: 20, interface: {...}}
    optim:           {lr: 1e-3, warmup_steps: 100, schedule: cosine, ...}
    train:           {budget: cpu, steps: 2000, eval_every: 200, ...}
    budgets:
      smoke: {train: {steps: 20}, data: {train: 64}}
      cpu:   {}
      paper: {train: {steps: 100000}}

Resolution order: the file, then the preset named by ``train.budget`` (deep-merged),
then the ``--set`` overrides (which also choose the preset). Every key is checked
before anything is built: an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the dotted key. Arguments of datasets, models and
interfaces are free-form here and checked against the factory's signature by
:mod:`symtrain.train.builders`.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ..errors import SymmetryError


class ConfigError(SymmetryError):
    """A recipe key that does not exist, or a value that does not fit it."""


METHODS = ("none", "augment", "remul", "group_averaging", "frame_averaging", "canonicalization",
           "ps", "learned_canonicalization")


@dataclass
class DataConfig:
    """``name`` picks a dataset from :data:`symtrain.train.builders.DATASETS`; any other
    key is an argument of that dataset (e.g. ``train: 3000``)."""

    name: str = ""
    batch_size: int = 32
    eval_batch_size: int | None = None
    cache_dir: str | None = None
    path: str | None = None
    num_workers: int = 0
    args: dict = field(default_factory=dict)


@dataclass
class ModelConfig:
    """``name`` picks a model from :data:`symtrain.train.builders.MODELS`; any other key is
    an argument of it (e.g. ``dim: 64``)."""

    name: str = ""
    args: dict = field(default_factory=dict)


@dataclass
class SymmetrizationConfig:
    """How the model is made to respect the symmetry (``method``), with its settings.

    - ``group``: overrides the dataset's group (e.g. ``"S_n x O3"``); ``None`` keeps it.
    - ``samples`` / ``eval_samples`` / ``test_samples``: group elements per input in
      training, evaluation and the final test (Monte-Carlo and PS).
    - ``frame_tol``: tolerance of PCA frames/canonicalization (eigenvalue gaps and
      third moments below it raise; the foundation's default is 1e-3).
    - ``interface``: arguments of the PS interface (``name`` picks the class).
    - ``remul``: arguments of :class:`~symtrain.losses.EquivarianceLoss`.
    - ``equivariance_samples`` / ``equivariance_inputs``: elements and inputs of the
      equivariance error measured at every evaluation; ``lie_derivative``: also the Lie
      derivative along each generator of a continuous group.
    """

    method: Literal[METHODS] = "none"  # type: ignore[valid-type]
    group: str | None = None
    samples: int | None = None
    eval_samples: int | None = None
    test_samples: int | None = None
    noise_scale: float = 1.0
    frame_tol: float | None = None
    interface: dict = field(default_factory=dict)
    remul: dict = field(default_factory=dict)
    equivariance_samples: int = 8
    equivariance_inputs: int = 32
    lie_derivative: bool = True


@dataclass
class ParamGroupConfig:
    """Parameters whose name matches the regex ``match`` get their own learning rate
    (``lr`` or ``lr_scale`` × the base rate) and weight decay."""

    match: str = ""
    lr: float | None = None
    lr_scale: float | None = None
    weight_decay: float | None = None


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then a ``cosine``, ``linear`` or ``constant`` schedule.

    ``skip_nonfinite``: how many optimizer steps with NaN/inf gradients may be skipped
    (no update, like a grad scaler's overflow skip) before training stops with an error;
    0 stops at the first."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = None
    skip_nonfinite: int = 0
    param_groups: list[ParamGroupConfig] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Loop settings. ``steps`` counts optimizer steps; ``grad_accum`` micro-batches make one
    step (``data.batch_size`` is the global batch of one step, over all processes).
    ``threads``: CPU threads per process (``torch.set_num_threads``; ``None`` keeps torch's
    default; 1 is fastest for tiny models on a busy machine)."""

    budget: str = "cpu"
    steps: int = 1000
    seed: int = 0
    grad_accum: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    cpu: bool = False
    threads: int | None = None
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    progress: bool = True
    out_dir: str | None = None


@dataclass
class Recipe:
    name: str = ""
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    symmetrization: SymmetrizationConfig = field(default_factory=SymmetrizationConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    budgets: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain nested dict in the YAML layout (free-form arguments inlined)."""
        out = dataclasses.asdict(self)
        for section in ("data", "model"):
            extra = out[section].pop("args")
            out[section].update(extra)
        return out


# Sections whose unknown keys are collected into ``args`` (checked later by the builders).
_OPEN_SECTIONS = {DataConfig, ModelConfig}


# --- parsing and checking ------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked (and, for numbers written as strings such as ``1e-3``, converted)
    against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def build_section(cls: type, data: Any, prefix: str) -> Any:
    """Instantiate the dataclass ``cls`` from a mapping, naming any bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.name != "args"]
    values, extra = {}, {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key in known:
            values[key] = _coerce(value, hints[key], dotted)
        elif cls in _OPEN_SECTIONS:
            extra[key] = value
        else:
            raise ConfigError(f"{dotted}: unknown key; {prefix or 'a recipe'} has {', '.join(known)}")
    if cls in _OPEN_SECTIONS:
        values["args"] = extra
    return cls(**values)


def deep_merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, recursively for nested mappings (copies, no mutation)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-3"`` → ``(["optim", "lr"], 0.001)``; values are read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. optim.lr=1e-3)")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"{key}: cannot read value {raw!r}: {err}") from None
    if isinstance(value, str):
        for conv in (int, float):
            try:
                value = conv(value)
                break
            except ValueError:
                pass
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set each ``a.b.c=v`` in a copy of the nested mapping ``data``."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])} is a value, not a section: "
                                  f"cannot set {'.'.join(parts)}")
            node = child
        node[parts[-1]] = value
    return out


def resolve(data: dict, overrides: list[str] | None = None, budget: str | None = None) -> Recipe:
    """Recipe from a parsed YAML mapping, a budget preset and ``--set`` overrides."""
    if not isinstance(data, dict):
        raise ConfigError(f"a recipe is a mapping of sections, got {type(data).__name__}")
    overrides = list(overrides or [])
    if budget is not None:
        overrides.append(f"train.budget={budget}")
    first = apply_overrides(data, overrides)
    budgets = first.get("budgets") or {}
    if not isinstance(budgets, dict):
        raise ConfigError(f"budgets: expected a mapping of preset names, got {budgets!r}")
    chosen = (first.get("train") or {}).get("budget", TrainConfig.budget)
    if budgets and chosen not in budgets:
        raise ConfigError(f"train.budget: unknown preset {chosen!r}; this recipe has "
                          f"{', '.join(budgets)}")
    preset = budgets.get(chosen) or {}
    if not isinstance(preset, dict):
        raise ConfigError(f"budgets.{chosen}: expected a mapping of sections, got {preset!r}")
    for section in preset:
        if section in ("budgets", "name", "description"):
            raise ConfigError(f"budgets.{chosen}.{section}: a preset may only set data, model, "
                              "symmetrization, optim and train")
    merged = apply_overrides(deep_merge(data, preset), overrides)
    recipe = build_section(Recipe, merged, "")
    validate(recipe)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None,
                budget: str | None = None) -> Recipe:
    """Read, resolve and validate a recipe file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {str(path)!r} does not exist; `symtrain recipes` lists "
                          "the provided ones")
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return resolve(data, overrides, budget)


def _positive(key: str, value: Any, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def validate(recipe: Recipe) -> None:
    """Checks across keys, naming the key at fault."""
    d, s, o, t = recipe.data, recipe.symmetrization, recipe.optim, recipe.train
    if not d.name:
        raise ConfigError("data.name: missing; name a dataset (see symtrain.train.builders.DATASETS)")
    if not recipe.model.name:
        raise ConfigError("model.name: missing; name a model (see symtrain.train.builders.MODELS)")
    for key, value in [("data.batch_size", d.batch_size), ("data.eval_batch_size", d.eval_batch_size),
                       ("train.steps", t.steps), ("train.grad_accum", t.grad_accum),
                       ("train.log_every", t.log_every), ("train.eval_every", t.eval_every),
                       ("train.checkpoint_every", t.checkpoint_every),
                       ("train.keep_checkpoints", t.keep_checkpoints),
                       ("train.eval_batches", t.eval_batches), ("train.threads", t.threads), ("symmetrization.samples", s.samples),
                       ("symmetrization.eval_samples", s.eval_samples),
                       ("symmetrization.test_samples", s.test_samples),
                       ("symmetrization.equivariance_samples", s.equivariance_samples),
                       ("symmetrization.equivariance_inputs", s.equivariance_inputs),
                       ("optim.lr", o.lr), ("optim.eps", o.eps)]:
        _positive(key, value)
    for key, value in [("data.num_workers", d.num_workers), ("optim.weight_decay", o.weight_decay),
                       ("optim.warmup_steps", o.warmup_steps),
                       ("optim.skip_nonfinite", o.skip_nonfinite), ("optim.grad_clip", o.grad_clip),
                       ("symmetrization.noise_scale", s.noise_scale),
                       ("symmetrization.frame_tol", s.frame_tol), ("train.seed", t.seed),
                       ("optim.min_lr_ratio", o.min_lr_ratio)]:
        _positive(key, value, allow_zero=True)
    if d.batch_size % t.grad_accum:
        raise ConfigError(f"data.batch_size: {d.batch_size} is not divisible by train.grad_accum="
                          f"{t.grad_accum} (the batch is the global batch of one optimizer step)")
    if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
        raise ConfigError(f"optim.betas: two numbers in [0, 1), got {o.betas}")
    if o.min_lr_ratio > 1:
        raise ConfigError(f"optim.min_lr_ratio: at most 1, got {o.min_lr_ratio}")
    for i, group in enumerate(o.param_groups):
        if not group.match:
            raise ConfigError(f"optim.param_groups[{i}].match: a regex on parameter names is required")
        if group.lr is not None and group.lr_scale is not None:
            raise ConfigError(f"optim.param_groups[{i}]: give lr or lr_scale, not both")
        _positive(f"optim.param_groups[{i}].lr", group.lr)
        _positive(f"optim.param_groups[{i}].lr_scale", group.lr_scale)
    if s.method in ("group_averaging",) and s.samples is None and s.eval_samples is not None:
        raise ConfigError("symmetrization.samples: set it together with eval_samples")
    if s.method in ("ps",) and s.samples is None:
        raise ConfigError("symmetrization.samples: probabilistic symmetrization needs the number "
                          "of samples per input in training (the paper uses 20 for n-body)")
    for key, methods in (("interface", ("ps", "learned_canonicalization")), ("remul", ("remul",))):
        if getattr(s, key) and s.method not in methods:
            raise ConfigError(f"symmetrization.{key}: only used with method {' or '.join(methods)}, "
                              f"not {s.method!r}")
