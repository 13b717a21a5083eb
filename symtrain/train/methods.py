"""Training methods by name: what ``symmetrization.method`` in a recipe may say.

Methods have one registry, :data:`symtrain.symmetrize.registry.METHODS`: the
**symmetrizers** (wrapper models registered with
:func:`~symtrain.symmetrize.register_symmetrizer`: ``group_averaging``, ``ps``, …, and
any that a user registers) and the **training-only methods** registered here with
:func:`register_method`: ``none``, ``augment`` (random group elements applied to each
batch) and ``remul`` (an equivariance penalty in the loss). :func:`create_method` builds
either kind. Every other key of the recipe's ``symmetrization`` section is an option of
the method, checked once against the signature of its entry, so a new method is usable
from a recipe once registered, with no other edit.

An entry is called as ``entry(base, symmetry, **options)``; the arguments ``task`` (the
:class:`~symtrain.data.task.Task`) and ``example`` (a batch of inputs) are passed to the
entries that take them, and are not options. It returns the model to train (a
symmetrizer) or a :class:`Built`.

An ``interface`` option given as a mapping (``{name: PermutationInterface, hidden: 64}``)
is built with :func:`symtrain.symmetrize.interfaces.create_interface` from the example
batch (its input widths are read from the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..data.task import Task
from ..domains import OPTIONAL_COUNT, check_args
from ..registry import ArgumentError, UnknownNameError, check_arguments, keyword_parameters
from ..symmetrize.interfaces import create_interface
from ..symmetrize.registry import METHODS, check_supported
from ..symmetry import Symmetry

#: Arguments an entry may take that the builder fills in (not options of a recipe).
CONTEXT = ("task", "example")


@dataclass
class Built:
    """What a method makes: the model to train, and optionally a batch transform
    (augmentation) or a loss module that replaces the task loss (REMUL)."""

    model: nn.Module
    augment: Callable | None = None
    criterion: nn.Module | None = None


def register_method(name: str, *aliases: str):
    """Register a training-only method ``fn(base, symmetry, task, **options) -> Built``
    on :data:`~symtrain.symmetrize.registry.METHODS`; its keyword arguments after
    ``base, symmetry`` (``task`` and ``example`` excepted) are the options a recipe may
    give."""
    return lambda fn: METHODS.register(name, fn, aliases=aliases, tags=("training",))


def list_methods() -> list[str]:
    """Every name ``symmetrization.method`` accepts (aliases, such as ``ga``, are
    accepted too), sorted."""
    return METHODS.list()


def is_method(name: str) -> bool:
    """Whether ``symmetrization.method`` may say ``name``."""
    return name in METHODS


def create_method(name: str, base: nn.Module, symmetry: Symmetry, *, task: Task | None = None,
                  example: Any = None, **options: Any) -> Built:
    """The model (and augmentation / loss) of method ``name`` around ``base``.

    Args:
        task: the data, for entries that take it (REMUL's task loss).
        example: a batch of inputs, for entries that take it and for the input widths of
            an ``interface`` given as a mapping.
        options: the method's options; an unknown one raises
            :class:`~symtrain.registry.ArgumentError` naming it (``interface.<key>`` for
            an interface given as a mapping), a group the method does not support
            :class:`~symtrain.errors.UnsupportedGroupError`.
    """
    fn = METHODS.get(name)
    check_arguments(fn, options, f"method {name!r}", skip=2, hidden=CONTEXT)
    if isinstance(options.get("interface"), dict):
        try:
            options["interface"] = create_interface(options["interface"], symmetry, example=example)
        except ArgumentError as err:
            raise ArgumentError(f"interface.{err.key}", err.reason) from None
        except UnknownNameError as err:
            raise ArgumentError("interface.name", str(err)) from None
        except (TypeError, ValueError) as err:
            raise ArgumentError("interface", str(err)) from err
    check_supported(name, symmetry.group, options)
    params = keyword_parameters(fn)
    context = {k: v for k, v in (("task", task), ("example", example)) if k in params}
    made = fn(base, symmetry, **context, **options)
    return made if isinstance(made, Built) else Built(made)


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
@check_args(samples=OPTIONAL_COUNT)
def remul(base: nn.Module, symmetry: Symmetry, task: Task, samples: int | None = None,
          remul: dict | None = None) -> Built:
    """The base model trained with :class:`~symtrain.losses.EquivarianceLoss` (its
    arguments in ``remul``, ``samples`` group elements per step). ``distance: task``
    takes the task's own loss for the equivariance term too (classification: the
    cross-entropy of ``f(g·x)`` against the label, which an invariant label keeps)."""
    from ..losses import EquivarianceLoss

    args = dict(remul or {})
    args.setdefault("task_loss", task.loss)
    if args.get("distance") == "task":
        args["distance"] = task.loss
    if samples is not None:
        args.setdefault("samples", samples)
    try:
        check_arguments(EquivarianceLoss, args, "EquivarianceLoss", skip=1)
    except ArgumentError as err:
        raise ArgumentError(f"remul.{err.key}", err.reason) from None
    return Built(base, criterion=EquivarianceLoss(symmetry, **args))
