"""The ``cluster`` dataset: CLUSTER (Dwivedi et al., "Benchmarking GNNs") through
torch_geometric's own ``GNNBenchmarkDataset``.

SBM graphs of 40–190 nodes in 6 communities; one node per community carries its label
in the features, the task is every node's community (node-level, 6 classes); splits
10k / 1k / 1k. Group S_n on the nodes, outputs equivariant. Metric and loss as
:mod:`~.pattern` (weighted accuracy per evaluation batch of 128, weighted cross-entropy).
``data.path`` is the ``root`` of ``GNNBenchmarkDataset(root, "CLUSTER")``
(``<root>/CLUSTER/processed/{train,val,test}_data.pt``, or only the raw
``<root>/CLUSTER/raw/CLUSTER_v2.pt``), read offline first.
"""

from __future__ import annotations

from .registry import register_dataset
from .task import Task


@register_dataset("cluster")
def cluster_task(path: str | None = None, max_nodes: int | None = 190, train: int | None = None,
                 val: int | None = None, test: int | None = None, download: bool = False,
                 timeout: float = 60.0) -> Task:
    """CLUSTER from the local root ``path`` (arguments as ``pattern``)."""
    from .benchmark_graphs import gnn_benchmark_task

    return gnn_benchmark_task("CLUSTER", 6, path=path, max_nodes=max_nodes, download=download, timeout=timeout,
                              limits={"train": train, "val": val, "test": test})
