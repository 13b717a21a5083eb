"""The ``pattern`` dataset: PATTERN (Dwivedi et al., "Benchmarking GNNs") through
torch_geometric's own ``GNNBenchmarkDataset``.

SBM graphs of 44–188 nodes with a planted pattern; each node is in it or not
(node-level, 2 classes); splits 10k / 2k / 2k. Group S_n on the nodes, outputs
equivariant. Main metric: the benchmark's ``weighted_accuracy`` (per evaluation batch,
mean of the per-class recalls, in percent, then the mean over batches: use
``data.eval_batch_size: 128`` to match; see :mod:`~.benchmark_metrics`); the plain node
``accuracy`` beside it. Loss: cross-entropy with the benchmark's per-batch class weights.

**Data.** ``data.path`` is the ``root`` of ``GNNBenchmarkDataset(root, "PATTERN")``:
``<root>/PATTERN/processed/{train,val,test}_data.pt`` is read as it is; a root holding
only the raw file ``<root>/PATTERN/raw/PATTERN_v2.pt`` is processed by PyG's own
``process()``; nothing is downloaded unless ``download=True``.
"""

from __future__ import annotations

from .registry import register_dataset
from .task import Task


@register_dataset("pattern")
def pattern_task(path: str | None = None, max_nodes: int | None = 188, train: int | None = None,
                 val: int | None = None, test: int | None = None, download: bool = False,
                 timeout: float = 60.0) -> Task:
    """PATTERN from the local root ``path`` as dense graphs of ``max_nodes`` nodes (``None``:
    the largest graph); ``train``/``val``/``test`` keep the first graphs of each split."""
    from .benchmark_graphs import gnn_benchmark_task

    return gnn_benchmark_task("PATTERN", 2, path=path, max_nodes=max_nodes, download=download, timeout=timeout,
                              limits={"train": train, "val": val, "test": test})
