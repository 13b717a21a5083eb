"""Models by name, timm-style: ``register_model`` / ``create_model`` / ``list_models``.

Each model registers itself in its own module of :mod:`symtrain.models`
(``@register_model("gin")`` on a class or factory); a new file there is found with no
other edit. Register a model from anywhere else the same way and import that module
before training (``symtrain train --import my_models``).

>>> model = create_model("gin", num_classes=2, hidden=8, layers=1)
>>> "gin" in list_models()
True
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..registry import Registry

MODELS: Registry[nn.Module] = Registry("model", "symtrain.models")


def register_model(name: str, fn: Callable[..., nn.Module] | None = None):
    """``@register_model("name")`` on a model class or factory, or
    ``register_model("name", cls)``."""
    return MODELS.register(name, fn)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """The model ``name`` built with ``kwargs``; unknown or missing arguments raise
    :class:`~symtrain.registry.ArgumentError` naming them."""
    return MODELS.create(name, **kwargs)


def list_models() -> list[str]:
    """Names of every registered model."""
    return MODELS.list()
