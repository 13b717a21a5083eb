"""Training methods by name: what ``symmetrization.method`` in a recipe may say.

A method is either a registered **symmetrizer** (a wrapper model, from
:mod:`symtrain.symmetrize.registry`: ``group_averaging``, ``ps``, …, and any that a user
registers) or a **training-only method** registered here: ``none``, ``augment``
(random group elements applied to each batch) and ``remul`` (an equivariance
penalty in the loss). Every other key of the recipe's ``symmetrization`` section is an
option of the method, checked against the signature of its factory, so a new method is
usable from a recipe once registered, with no other edit.

An ``interface`` option given as a mapping (``{name: PermutationInterface, hidden: 64}``)
is built with :func:`symtrain.symmetrize.interfaces.create_interface` from an example
batch (its input widths are read from the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..data.task import Task
from ..overrides import ConfigError
from ..registry import ArgumentError, Registry, check_arguments
from ..symmetry import Symmetry

from ..symmetrize.interfaces import create_interface
from ..symmetrize.registry import create_symmetrizer, is_symmetrizer, list_symmetrizers, symmetrizer_options

@dataclass
class Built:
    """What a method makes: the model to train, and optionally a batch transform
    (augmentation) or a loss module that replaces the task loss (REMUL)."""

    model: nn.Module
    augment: Callable | None = None
    criterion: nn.Module | None = None


TRAINING_METHODS: Registry[Built] = Registry("method")


def register_method(name: str):
    """Register a training-only method ``fn(base, symmetry, task, **options) -> Built``;
    its keyword arguments are the options a recipe may give."""
    return TRAINING_METHODS.register(name)


def list_methods() -> list[str]:
    """Every name ``symmetrization.method`` accepts: symmetrizers and training-only methods
    (symmetrizers' aliases, such as ``ga``, are accepted too)."""
    return sorted(set(TRAINING_METHODS.list()) | set(list_symmetrizers()))


def is_method(name: str) -> bool:
    """Whether ``symmetrization.method`` may say ``name``."""
    return name in TRAINING_METHODS or is_symmetrizer(name)


@register_method("none")
def plain(base: nn.Module, symmetry: Symmetry, task: Task) -> Built:
    """The base model as it is."""
    return Built(base)


@register_method("augment")
def augment(base: nn.Module, symmetry: Symmetry, task: Task) -> Built:
    """The base model trained on randomly transformed batches."""
    from ..augment import Augment

    return Built(base, augment=Augment(symmetry))


@register_method("remul")
def remul(base: nn.Module, symmetry: Symmetry, task: Task, samples: int | None = None,
          remul: dict | None = None) -> Built:
    """The base model trained with :class:`~symtrain.losses.EquivarianceLoss` (its
    arguments in ``remul``, ``samples`` group elements per step)."""
    from ..losses import EquivarianceLoss

    args = dict(remul or {})
    args.setdefault("task_loss", task.loss)
    if samples is not None:
        args.setdefault("samples", samples)
    try:
        check_arguments(EquivarianceLoss, args, "EquivarianceLoss", skip=1)
    except ArgumentError as err:
        raise ArgumentError(f"remul.{err.key}", err.reason) from None
    return Built(base, criterion=EquivarianceLoss(symmetry, **args))


def build_method(name: str, base: nn.Module, symmetry: Symmetry, task: Task, options: dict[str, Any],
                 example: Any) -> Built:
    """The model (and augmentation / loss) of method ``name`` around ``base``.
    ``example``: a batch of inputs, passed to a method that takes ``example`` and used for
    the input widths of an ``interface`` given as a mapping. Bad options raise
    :class:`ConfigError` naming ``symmetrization.<key>``."""
    options = dict(options)
    try:
        if name in TRAINING_METHODS:
            return TRAINING_METHODS.create(name, base, symmetry, task, **options)
        known = [k for k in symmetrizer_options(name) if k != "example"]
        for key in options:
            if key not in known:
                raise ArgumentError(key, f"not an argument of method {name!r} (arguments: {', '.join(known) or 'none'})")
        if isinstance(options.get("interface"), dict):
            options["interface"] = _interface(symmetry, options["interface"], example)
        if "example" in symmetrizer_options(name):
            options["example"] = example
        return Built(create_symmetrizer(name, base, symmetry, **options))
    except ArgumentError as err:
        raise ConfigError(f"symmetrization.{err.key}: {err.reason}") from None
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        shown = {k: v for k, v in options.items() if k != "example"}
        raise ConfigError(f"symmetrization: method {name!r} rejected its options {shown}: {err}") from err


def _interface(symmetry: Symmetry, spec: dict, example: Any) -> nn.Module:
    try:
        return create_interface(spec, symmetry, example=example)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"symmetrization.interface: {err}") from err
