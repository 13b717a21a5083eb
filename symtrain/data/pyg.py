"""Reading graph benchmarks that the user already has on disk, in torch_geometric's own
processed format, without downloading anything.

``load_gnn_benchmark(root, "PATTERN", "train", max_nodes)`` reads
``root/PATTERN/processed/train_data.pt`` as written by
``torch_geometric.datasets.GNNBenchmarkDataset(root, "PATTERN")`` on a machine with
network access, and returns dense graphs (:class:`~symtrain.data.graphs.DenseGraphs`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .graphs import DenseGraphs


def _processed_dataset(folder: Path, filename: str):
    from torch_geometric.data import InMemoryDataset

    class _Processed(InMemoryDataset):
        # A dataset with no raw files and no download step: it only loads what is there.
        @property
        def raw_file_names(self):
            return []

        @property
        def processed_file_names(self):
            return [filename]

        def process(self):  # pragma: no cover - only reached when the file vanished meanwhile
            raise FileNotFoundError(self.processed_paths[0])

    ds = _Processed(str(folder))
    ds.load(ds.processed_paths[0])
    return ds


def load_gnn_benchmark(root: str | Path, name: str, split: str, max_nodes: int,
                       limit: int | None = None) -> DenseGraphs:
    """Dense ``[B, max_nodes, max_nodes]`` adjacency, node features, mask and node labels
    (``-1`` on padding) of a local ``GNNBenchmarkDataset`` split (e.g. PATTERN, CLUSTER)."""
    from torch_geometric.data import Batch
    from torch_geometric.utils import to_dense_adj, to_dense_batch

    root = Path(root).expanduser()
    file = root / name / "processed" / f"{split}_data.pt"
    if not file.is_file():
        raise FileNotFoundError(
            f"{name} {split} split not found: expected {file}. Create it on a machine with network "
            f"access with torch_geometric.datasets.GNNBenchmarkDataset(root, {name!r}, split={split!r}) "
            "and copy the root folder here; nothing is downloaded at run time.")
    ds = _processed_dataset(root / name, file.name)
    graphs = [ds[i] for i in range(len(ds) if limit is None else min(limit, len(ds)))]
    sizes = torch.tensor([g.num_nodes for g in graphs])
    if int(sizes.max()) > max_nodes:
        raise ValueError(f"{name} {split} has graphs of up to {int(sizes.max())} nodes, more than "
                         f"max_nodes={max_nodes}; raise max_nodes")
    batch = Batch.from_data_list(graphs)
    x = batch.x.float() if batch.x.dim() == 2 else batch.x.float()[:, None]
    features, mask = to_dense_batch(x, batch.batch, max_num_nodes=max_nodes)
    adjacency = to_dense_adj(batch.edge_index, batch.batch, max_num_nodes=max_nodes)
    labels, _ = to_dense_batch(batch.y.long(), batch.batch, fill_value=-1, max_num_nodes=max_nodes)
    return DenseGraphs(adjacency=(adjacency > 0).float(), features=features, mask=mask, labels=labels)
