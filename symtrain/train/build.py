"""From a recipe to the things training needs: the task (data), the base model, the
method's model (with augmentation / loss), each looked up by name in its registry with
the recipe's arguments checked against the factory (``model.dimm: not an argument of
model 'nbody_transformer'``)."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from torch import nn

from ..data.registry import DATASETS, create_dataset
from ..data.task import Task
from ..models.registry import MODELS, create_model
from ..overrides import ConfigError
from ..registry import ArgumentError, UnknownNameError, keyword_parameters
from ..symmetry import Symmetry
from .config import Recipe
from .methods import Built, create_method

T = TypeVar("T")


def _create(section: str, name_key: str, kind: str, name: str, make: Callable[[], T], shown: dict) -> T:
    """``make()``, the one path from a recipe section to a registry entry: an unknown
    name, a bad argument or an entry rejecting its arguments becomes a
    :class:`ConfigError` naming ``section.key``."""
    try:
        return make()
    except UnknownNameError as err:
        raise ConfigError(f"{section}.{name_key}: {err}") from None
    except ArgumentError as err:
        raise ConfigError(f"{section}.{err.key}: {err.reason}") from None
    except (ConfigError, FileNotFoundError):
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{section}: {kind} {name!r} rejected its arguments {shown}: {err}") from err


def _filled(factory: Callable, args: dict, fill: dict) -> dict:
    """``args`` plus the entries of ``fill`` that ``factory`` takes and ``args`` leaves out."""
    params = keyword_parameters(factory)
    return {**{k: v for k, v in fill.items() if k in params}, **args}


def build_task(recipe: Recipe) -> Task:
    """The dataset named by ``data.name`` with the section's other keys as arguments."""
    d = recipe.data
    args = d.args
    for key in ("cache_dir", "path"):
        value = getattr(d, key)
        if value is not None:
            if d.name in DATASETS and key not in keyword_parameters(DATASETS.get(d.name)):
                raise ConfigError(f"data.{key}: dataset {d.name!r} does not use it")
            args[key] = value
    try:
        return _create("data", "name", "dataset", d.name, lambda: create_dataset(d.name, **args), args)
    except FileNotFoundError as err:
        raise ConfigError(f"data.path: {err}") from err


def build_model(recipe: Recipe, task: Task) -> nn.Module:
    """The base model named by ``model.name``; arguments it has but the recipe leaves
    out come from ``task.info`` (``num_nodes``, ``num_classes``, …)."""
    m = recipe.model

    def make() -> nn.Module:
        kwargs = _filled(MODELS.get(m.name), m.args, task.info)
        return create_model(m.name, **kwargs)

    try:
        return _create("model", "name", "model", m.name, make, m.args)
    except FileNotFoundError as err:  # a weights file named by the recipe, or the hub unreachable
        key = "checkpoint" if m.args.get("checkpoint") is not None else "pretrained"
        raise ConfigError(f"model.{key}: {err}") from err


def build_method(recipe: Recipe, base: nn.Module, symmetry: Symmetry, task: Task) -> Built:
    """The model (and augmentation / loss) of ``symmetrization.method`` around ``base``,
    its options the section's other keys (:func:`~symtrain.train.methods.create_method`)."""
    s = recipe.symmetrization
    return _create("symmetrization", "method", "method", s.method, lambda: create_method(
        s.method, base, symmetry, task=task, example=example_inputs(task), **s.args), s.args)


def build_symmetry(recipe: Recipe, task: Task) -> Symmetry:
    """The task's symmetry, with ``symmetrization.group`` replacing its group if given."""
    group = recipe.symmetrization.group
    if group is None:
        return task.symmetry
    try:
        return Symmetry(group, input=task.symmetry.input, output=task.symmetry.output)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"symmetrization.group: {err}") from err


def example_inputs(task: Task, n: int = 2) -> Any:
    """The inputs of the first ``n`` training examples (a batch)."""
    return task.train.__getitems__(list(range(min(n, len(task.train)))))[0]


def build(recipe: Recipe, task: Task | None = None) -> tuple[Task, Symmetry, Built]:
    """Task, the wrapper's symmetry and the method's model (and augmentation / loss)."""
    task = task if task is not None else build_task(recipe)
    sym = build_symmetry(recipe, task)
    base = build_model(recipe, task)
    s = recipe.symmetrization
    built = build_method(recipe, base, sym, task)
    if s.test_samples is not None and not hasattr(built.model, "eval_samples"):
        raise ConfigError(f"symmetrization.test_samples: method {s.method!r} has no samples "
                          "(its model has no eval_samples); remove it")
    return task, sym, built
