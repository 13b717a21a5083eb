"""The ``pattern`` dataset: PATTERN (Dwivedi et al.) from a local torch_geometric root."""

from __future__ import annotations

from ..actions import create_action
from ..overrides import ConfigError
from ..symmetry import Symmetry
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, node_cross_entropy


@register_dataset("pattern")
def pattern_task(path: str | None = None, max_nodes: int = 188, train: int | None = None,
                 val: int | None = None, test: int | None = None) -> Task:
    """PATTERN read from a local ``torch_geometric`` ``GNNBenchmarkDataset`` root
    (``data.path``): nothing is downloaded. Graphs are made dense (adjacency, one-hot node
    features, mask, node labels) up to ``max_nodes``; ``train``/``val``/``test`` keep the
    first graphs of each split."""
    from .pyg import load_gnn_benchmark

    if path is None:
        raise ConfigError("data.path: PATTERN is read from a local GNNBenchmarkDataset root; "
                          "set data.path to the folder that holds PATTERN/")
    limits = {"train": train, "val": val, "test": test}
    splits = {k: load_gnn_benchmark(path, "PATTERN", k, max_nodes, limit=v) for k, v in limits.items()}
    make = {k: TensorData((g.adjacency, g.features, g.mask), g.labels) for k, g in splits.items()}
    sym = Symmetry("S_n", input=create_action("fields", "adjacency", "nodes", "mask"), output="nodes")
    feats = splits["train"].features.shape[-1]
    return Task(make["train"], make["val"], make["test"], sym, node_cross_entropy, accuracy_metrics,
                "accuracy", {"num_nodes": max_nodes, "max_nodes": max_nodes, "num_classes": 2,
                             "in_features": feats})
