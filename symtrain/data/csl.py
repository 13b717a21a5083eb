"""The ``csl`` dataset: circular skip-link graphs, group S_n."""

from __future__ import annotations

import torch

from .graphs import csl_graphs, graph_classification_task
from .registry import register_dataset
from .task import Task, split_indices


@register_dataset("csl")
def csl_task(per_class: int = 15, nodes: int = 41, seed: int = 0, val_fraction: float = 0.2,
             test_fraction: float = 0.2) -> Task:
    """Circular skip-link graphs, 10 classes that 1-WL cannot separate."""
    graphs = csl_graphs(per_class, nodes=nodes, generator=torch.Generator().manual_seed(seed))
    return graph_classification_task(graphs, split_indices(len(graphs), val_fraction, test_fraction, seed))
