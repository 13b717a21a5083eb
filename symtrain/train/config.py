"""Typed recipes: YAML loading, budget presets, ``--set a.b=v`` overrides, validation.

A recipe is one YAML file with five sections and budget presets::

    name: nbody_ps
    description: Transformer + probabilistic symmetrization on 5-body Coulomb dynamics
    data:            {name: nbody, batch_size: 100, ...dataset arguments}
    model:           {name: nbody_transformer, ...model arguments}
    symmetrization:  {method: ps, samples: 20, eval_samples: 20, interface: {...}, ...method options}
    optim:           {lr: 1e-3, warmup_steps: 100, schedule: cosine, ...}
    train:           {budget: cpu, steps: 2000, eval_every: 200, ...}
    budgets:
      smoke: {train: {steps: 20}, data: {train: 64}}
      cpu:   {}
      paper: {train: {steps: 100000}}

Resolution order: the file, then the preset named by ``train.budget`` (deep-merged),
then the ``--set`` overrides (which also choose the preset). Every key is checked
before anything is built: an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the dotted key. Arguments of datasets and models, and the
options of the symmetrization method, are free-form here and checked against the
registered factory's signature when it is built (:mod:`symtrain.train.build`).

The schema is pydantic models rather than OmegaConf structured configs: pydantic checks
nested models, literals and numeric bounds (``gt=0``) with a location for every error
(turned into dotted keys here), and open sections (``extra="allow"``) keep the
free-form arguments; OmegaConf would bring its own YAML loader and interpolation, which
the recipes do not use, and weaker checks of values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..overrides import ConfigError, apply_overrides, deep_merge, parse_override  # noqa: F401 (re-exported)

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class Section(BaseModel):
    """A recipe section: unknown keys are errors; values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OpenSection(BaseModel):
    """A section whose other keys are arguments of what it names (``args``)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @property
    def args(self) -> dict[str, Any]:
        """The keys that are not fields: arguments of the dataset / model / method."""
        return dict(self.model_extra or {})


class DataConfig(OpenSection):
    """``name`` picks a dataset (:func:`symtrain.data.list_datasets`); any other key is an
    argument of it (e.g. ``train: 3000``)."""

    name: str = ""
    batch_size: Positive = 32
    eval_batch_size: Positive | None = None
    cache_dir: str | None = None
    path: str | None = None
    num_workers: NonNegative = 0


class ModelConfig(OpenSection):
    """``name`` picks a model (:func:`symtrain.models.list_models`); any other key is an
    argument of it (e.g. ``dim: 64``)."""

    name: str = ""


class SymmetrizationConfig(OpenSection):
    """How the model is made to respect the symmetry.

    - ``method``: a registered symmetrizer (:func:`symtrain.symmetrize.registry.list_symmetrizers`)
      or a training-only method (``none``, ``augment``, ``remul``), one registry
      (:func:`symtrain.train.methods.list_methods`). Any other key is an option of the
      method, checked against its signature (e.g. ``samples``, ``eval_samples``,
      ``noise_scale``, ``interface: {name: ..., ...}``, ``remul: {...}``).
    - ``group``: overrides the dataset's group (e.g. ``"S_n x O3"``); ``None`` keeps it.
    - ``test_samples``: group elements per input in the final test (the model's
      ``eval_samples`` during the test).
    - ``equivariance_samples`` / ``equivariance_inputs``: elements and inputs of the
      equivariance error measured at every evaluation; ``lie_derivative``: also the Lie
      derivative along each generator of a continuous group.
    """

    method: str = "none"
    group: str | None = None
    test_samples: Positive | None = None
    equivariance_samples: Positive = 8
    equivariance_inputs: Positive = 32
    lie_derivative: bool = True

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        from ..registry import UnknownNameError
        from .methods import METHODS

        try:
            METHODS.get(method)
        except UnknownNameError as err:
            close = f"; did you mean {' or '.join(map(repr, err.matches))}?" if err.matches else ""
            raise ValueError(f"must be one of {err.known}, got {method!r}{close}") from None
        return method


class ParamGroupConfig(Section):
    """Parameters whose name matches the regex ``match`` get their own learning rate
    (``lr`` or ``lr_scale`` × the base rate) and weight decay."""

    match: str = Field(min_length=1)
    lr: PositiveFloat | None = None
    lr_scale: PositiveFloat | None = None
    weight_decay: NonNegativeFloat | None = None

    @model_validator(mode="after")
    def _one_rate(self) -> "ParamGroupConfig":
        if self.lr is not None and self.lr_scale is not None:
            raise ValueError("give lr or lr_scale, not both")
        return self


class OptimConfig(Section):
    """AdamW with linear warm-up then a ``cosine``, ``linear`` or ``constant`` schedule
    (down to ``min_lr_ratio`` × the rate at ``train.steps``), or ``step``: the rate times
    ``gamma`` every ``step_size`` optimizer steps (torch's ``StepLR``).

    ``skip_nonfinite``: how many optimizer steps with NaN/inf gradients may be skipped
    (no update, like a grad scaler's overflow skip) before training stops with an error;
    0 stops at the first."""

    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    warmup_steps: NonNegative = 0
    schedule: Literal["cosine", "linear", "constant", "step"] = "cosine"
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    step_size: Positive | None = None
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.5
    grad_clip: NonNegativeFloat | None = None
    skip_nonfinite: NonNegative = 0
    param_groups: list[ParamGroupConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _step_schedule(self) -> "OptimConfig":
        if self.schedule == "step" and self.step_size is None:
            raise ValueError("optim.step_size: missing; schedule 'step' multiplies the rate by gamma every "
                             "step_size optimizer steps")
        if self.schedule != "step" and self.step_size is not None:
            raise ValueError(f"optim.step_size: only used by schedule 'step', not {self.schedule!r}")
        return self


class TrainConfig(Section):
    """Loop settings. ``steps`` counts optimizer steps; ``grad_accum`` micro-batches make one
    step (``data.batch_size`` is the global batch of one step, over all processes).
    ``threads``: CPU threads per process (``torch.set_num_threads``; ``None`` keeps torch's
    default; 1 is fastest for tiny models on a busy machine).

    ``select``: which weights the final metrics (and ``model.safetensors``) are of:
    ``last`` (the weights at ``steps``) or ``best_val`` (those of the evaluation with the
    best validation main metric, as the LPS paper reports; the step is recorded in
    ``metrics.json`` as ``selected_step``). ``test_trials``: the test split is evaluated
    that many times, each with a fresh draw of the model's randomness (the PS samples),
    and the metrics are averaged (``test/<metric>_std`` is their spread); LPS uses 5.

    ``monitor``: the validation quantity that ``best_val`` and early stopping watch: the
    task's main metric (``None``, the default), ``loss`` (the task's loss on the
    validation split, mean over its batches: the LPS PATTERN and PCQM-Contact setting) or
    another of the task's metrics by name. ``early_stop``: stop training after that many
    evaluations in a row without a better ``monitor`` (LPS: 100 validation epochs;
    ``None``: never); the final metrics record ``stopped_step``."""

    budget: str = "cpu"
    steps: Positive = 1000
    seed: NonNegative = 0
    grad_accum: Positive = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    cpu: bool = False
    threads: Positive | None = None
    log_every: Positive = 10
    eval_every: Positive = 200
    eval_batches: Positive | None = None
    checkpoint_every: Positive = 500
    keep_checkpoints: Positive = 2
    progress: bool = True
    out_dir: str | None = None
    select: Literal["last", "best_val"] = "last"
    test_trials: Positive = 1
    monitor: str | None = None
    early_stop: Positive | None = None


class Recipe(Section):
    """A resolved recipe (see the module docstring)."""

    name: str = ""
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    symmetrization: SymmetrizationConfig = Field(default_factory=SymmetrizationConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    budgets: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _across_keys(self) -> "Recipe":
        if not self.data.name:
            raise ValueError("data.name: missing; name a dataset (symtrain.data.list_datasets())")
        if not self.model.name:
            raise ValueError("model.name: missing; name a model (symtrain.models.list_models())")
        if self.data.batch_size % self.train.grad_accum:
            raise ValueError(f"data.batch_size: {self.data.batch_size} is not divisible by train.grad_accum="
                             f"{self.train.grad_accum} (the batch is the global batch of one optimizer step)")
        return self

    def to_dict(self) -> dict:
        """Plain nested dict in the YAML layout (free-form arguments inlined)."""
        return self.model_dump(mode="json")


def with_defaults(saved: dict) -> dict:
    """A saved recipe (a run's ``config.yaml``) with the keys this version added filled in
    with their defaults, so a run saved before a key existed resumes without reporting
    ``(unset) -> default`` as a change. A saved recipe this version cannot read is
    returned as it is (its differences are then reported key by key)."""
    try:
        return Recipe.model_validate(saved).to_dict()
    except (ValidationError, ValueError, TypeError):
        return saved


# --- errors with dotted keys ----------------------------------------------------------------
def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_REASONS = {
    "int_type": "expected an integer", "int_parsing": "expected an integer",
    "int_from_float": "expected an integer", "float_type": "expected a number",
    "float_parsing": "expected a number", "bool_type": "expected true or false",
    "bool_parsing": "expected true or false", "string_type": "expected a string",
    "dict_type": "expected a mapping", "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping", "list_type": "expected a list",
    "tuple_type": "expected a list",
}


def _message(error: dict) -> str:
    """One pydantic error as ``key: what is wrong, got value``."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    key = _dotted(error["loc"])
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: missing"
    if kind == "value_error":  # our own checks; the message may name its key already
        text = str(ctx.get("error", error["msg"]))
        return text if not key or text.startswith(key.split(".")[0] + ".") else f"{key}: {text}"
    if kind in _REASONS:
        return f"{key}: {_REASONS[kind]}, got {value!r}"
    if kind == "literal_error":
        return f"{key}: must be one of {ctx.get('expected')}, got {value!r}"
    for bound, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "at most")):
        if bound in ctx:
            return f"{key}: must be {sign} {ctx[bound]}, got {value!r}"
    return f"{key}: {error['msg']}, got {value!r}"


def _check(data: dict, known: dict[str, Any]) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        messages = list(dict.fromkeys(_message(e) for e in err.errors()))
        if any(m.endswith(": unknown key") for m in messages):
            messages = [_add_known(m, known) for m in messages]
        raise ConfigError("; ".join(messages)) from None


def _add_known(message: str, known: dict[str, Any]) -> str:
    if not message.endswith(": unknown key"):
        return message
    key = message[: -len(": unknown key")]
    section = key.rsplit(".", 1)[0] if "." in key else ""
    fields = known.get(section)
    return f"{message}; {section or 'a recipe'} has {', '.join(fields)}" if fields else message


_KNOWN = {"": list(Recipe.model_fields), "optim": list(OptimConfig.model_fields),
          "train": list(TrainConfig.model_fields)}


# --- resolution -----------------------------------------------------------------------------
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
    train = first.get("train") or {}
    chosen = train.get("budget", TrainConfig.model_fields["budget"].default) if isinstance(train, dict) else None
    if budgets and chosen not in budgets:
        raise ConfigError(f"train.budget: unknown preset {chosen!r}; this recipe has {', '.join(budgets)}")
    asked = budget is not None or any(o.split("=", 1)[0].strip() == "train.budget" for o in overrides)
    if not budgets and asked:  # the preset asked for cannot be applied: not silently ignored
        raise ConfigError(f"train.budget: {chosen!r} asked for, but this recipe has no budget presets (no "
                          "budgets section); drop --budget, or add the preset to the recipe")
    preset = budgets.get(chosen) or {}
    if not isinstance(preset, dict):
        raise ConfigError(f"budgets.{chosen}: expected a mapping of sections, got {preset!r}")
    for section in preset:
        if section in ("budgets", "name", "description"):
            raise ConfigError(f"budgets.{chosen}.{section}: a preset may only set data, model, "
                              "symmetrization, optim and train")
    return _check(apply_overrides(deep_merge(data, preset), overrides), _KNOWN)


def resolve_recorded(saved: dict, overrides: list[str] | None = None) -> Recipe:
    """The recipe a run recorded (its ``config.yaml``: presets already applied, so none is
    applied again) with ``overrides`` on top."""
    if not isinstance(saved, dict):
        raise ConfigError(f"a recorded recipe is a mapping of sections, got {type(saved).__name__}")
    return _check(apply_overrides(saved, list(overrides or [])), _KNOWN)


def load_recipe(path: str | Path, overrides: list[str] | None = None,
                budget: str | None = None) -> Recipe:
    """Read, resolve and validate a recipe file (a path, or any
    :class:`importlib.resources.abc.Traversable`; see the module docstring)."""
    path = Path(path) if isinstance(path, str) else path
    if path.is_dir():
        raise ConfigError(f"recipe file {str(path)!r} is a folder, not a recipe file (to add a folder of "
                          "recipes, give it to --recipes)")
    if not path.is_file():
        raise ConfigError(f"recipe file {str(path)!r} does not exist; `symtrain recipes` lists "
                          "the provided ones")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if isinstance(data, dict):
        data.setdefault("name", Path(path.name).stem)
    return resolve(data, overrides, budget)
