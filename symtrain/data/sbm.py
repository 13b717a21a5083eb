"""The ``sbm`` dataset: PATTERN-style node classification, group S_n."""

from __future__ import annotations

import torch

from ..actions import create_action
from ..symmetry import Symmetry
from .graphs import sbm_pattern
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, node_cross_entropy


@register_dataset("sbm")
def sbm_task(train: int = 1000, val: int = 200, test: int = 200, seed: int = 0,
             communities: int = 3, community_size: list[int] = (5, 10), pattern_size: int = 6,
             p: float = 0.5, q: float = 0.2, p_pattern: float = 0.5, q_pattern: float = 0.5,
             vocabulary: int = 3) -> Task:
    """Stochastic-block-model graphs with a planted pattern
    (:func:`symtrain.data.graphs.sbm_pattern`); inputs ``(adjacency, features, mask)``."""
    graphs = sbm_pattern(train + val + test, communities=communities,
                         community_size=tuple(community_size), p=p, q=q, pattern_size=pattern_size,
                         p_pattern=p_pattern, q_pattern=q_pattern, vocabulary=vocabulary,
                         generator=torch.Generator().manual_seed(seed))
    bounds = [(0, train), (train, train + val), (train + val, train + val + test)]
    make = [TensorData((graphs.adjacency[a:b], graphs.features[a:b], graphs.mask[a:b]),
                       graphs.labels[a:b]) for a, b in bounds]
    sym = Symmetry("S_n", input=create_action("fields", "adjacency", "nodes", "mask"), output="nodes")
    n = graphs.adjacency.shape[1]
    return Task(*make, sym, node_cross_entropy, accuracy_metrics, "accuracy",
                {"num_nodes": n, "max_nodes": n, "num_classes": 2, "in_features": vocabulary})
