"""The ``shapes`` dataset: locally generated shape images, group D4."""

from __future__ import annotations

import torch

from ..symmetry import Symmetry
from .images import SHAPE_CLASSES, shapes_dataset
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, graph_cross_entropy


@register_dataset("shapes")
def shapes_task(train: int = 20000, val: int = 1000, test: int = 1000, size: int = 64,
                noise: float = 0.1, seed: int = 0) -> Task:
    """Shape images (:func:`symtrain.data.images.shapes_dataset`) for pretraining ViTs
    offline. The classes are invariant to D4 (quarter turns and flips)."""
    splits = []
    for i, n in enumerate((train, val, test)):
        x, y = shapes_dataset(n, size=size, noise=noise, generator=torch.Generator().manual_seed(seed * 3 + i))
        splits.append(TensorData(x, y))
    sym = Symmetry("D4", input="image", output="trivial")
    return Task(*splits, sym, graph_cross_entropy, accuracy_metrics, "accuracy",
                {"num_classes": len(SHAPE_CLASSES), "img_size": size, "in_chans": 3})
