"""Datasets by name, timm-style. Each dataset registers its factory in its own module of
:mod:`symtrain.data` (``@register_dataset("nbody")``); a new file there is found with no
other edit. A factory returns a :class:`~symtrain.data.task.Task`.

>>> "nbody" in list_datasets()
True
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry
from .task import Task

DATASETS: Registry[Task] = Registry("dataset", "symtrain.data")


def register_dataset(name: str) -> Callable[[Callable[..., Task]], Callable[..., Task]]:
    """Decorator registering a ``factory(**args) -> Task`` as ``name``."""
    return DATASETS.register(name)


def create_dataset(name: str, **kwargs: Any) -> Task:
    """The task of the dataset ``name``; unknown arguments raise
    :class:`~symtrain.registry.ArgumentError` naming them."""
    return DATASETS.create(name, **kwargs)


def list_datasets() -> list[str]:
    """Names of every registered dataset."""
    return DATASETS.list()
