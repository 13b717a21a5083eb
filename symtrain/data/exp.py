"""The ``exp`` dataset: EXP-style graph separation, group S_n."""

from __future__ import annotations

import torch

from .graphs import exp_pairs, graph_classification_task
from .registry import register_dataset
from .task import Task, split_indices


@register_dataset("exp")
def exp_task(pairs: int = 600, base_nodes: int = 8, edge_prob: float = 0.25, cycle: int | None = None,
             seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Task:
    """Pairs of 1-WL-equivalent graphs with different labels
    (:func:`symtrain.data.graphs.exp_pairs`). Pairs are split, not graphs."""
    graphs = exp_pairs(pairs, base_nodes=base_nodes, edge_prob=edge_prob, cycle=cycle,
                       generator=torch.Generator().manual_seed(seed))
    parts = split_indices(pairs, val_fraction, test_fraction, seed)
    return graph_classification_task(graphs, [torch.stack([2 * p, 2 * p + 1], 1).flatten() for p in parts])
