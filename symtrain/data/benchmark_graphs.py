"""What the real graph benchmarks share: reading a split through one of PyG's own dataset
classes offline first, the OGB categorical atom and bond features, the dense batches and
the S_n symmetry with graph-, node- or edge-level outputs.

**Features.** Peptides and PCQM-Contact store OGB's categorical features: 9 atom columns
(atomic number, chirality, degree, formal charge, hydrogens, radical electrons,
hybridisation, aromatic, in ring; :data:`ATOM_DIMS` values each, OGB's
``get_atom_feature_dims()``) and 3 bond columns (type, stereo, conjugated;
:data:`BOND_DIMS`). The LPS code embeds them as OGB's ``AtomEncoder`` / ``BondEncoder``
do: one embedding table per column, summed. Here each column is one-hot encoded and
concatenated (:func:`one_hot_columns`, 174 atom and 13 bond channels) and the model's
first layer is linear without bias (``GraphViT(node_embed=…, edge_embed=…)``, the
``gine`` model's encoders): a linear map of the concatenated one-hots *is* that sum of
per-column embeddings (row ``k`` of the weight = the embedding of value ``k``).
Neither ``ogb`` nor ``torch_geometric.nn`` (outside GraphGym, which imports ``ogb``)
ships an encoder here, so the dimensions are written down and checked against the data.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..actions import create_action
from ..overrides import ConfigError
from ..symmetry import Symmetry

ATOM_DIMS = (119, 5, 12, 12, 10, 6, 6, 2, 2)
"""Values per atom feature column (OGB ``get_atom_feature_dims()``)."""
BOND_DIMS = (5, 6, 2)
"""Values per bond feature column (OGB ``get_bond_feature_dims()``)."""
SPLITS = ("train", "val", "test")


def one_hot_columns(codes: Tensor, dims: tuple[int, ...], what: str = "features") -> Tensor:
    """``codes [n, len(dims)]`` (integers, column ``c`` in ``[0, dims[c])``) → float
    ``[n, sum(dims)]``, the one-hot encodings of the columns side by side."""
    if codes.dim() != 2 or codes.shape[1] != len(dims):
        raise ConfigError(f"{what}: expected categorical codes [n, {len(dims)}] (OGB features), "
                          f"got {tuple(codes.shape)}")
    codes = codes.long()
    limit = torch.tensor(dims, device=codes.device)
    if codes.numel() and bool(((codes < 0) | (codes >= limit)).any()):
        col = int(((codes < 0) | (codes >= limit)).any(0).nonzero()[0])
        raise ConfigError(f"{what}: column {col} has a value outside [0, {dims[col]}) "
                          f"(max {int(codes[:, col].max())}); these are not OGB features")
    offsets = torch.tensor((0, *dims[:-1]), device=codes.device).cumsum(0)
    out = torch.zeros(codes.shape[0], sum(dims), device=codes.device)
    return out.scatter_(1, codes + offsets, 1.0)


def encode_atoms(x: Tensor) -> Tensor:
    """OGB atom codes ``[n, 9]`` → one-hot ``[n, 174]``."""
    return one_hot_columns(x, ATOM_DIMS, "atom features (x)")


def encode_bonds(edge_attr: Tensor) -> Tensor:
    """OGB bond codes ``[m, 3]`` → one-hot ``[m, 13]``."""
    return one_hot_columns(edge_attr, BOND_DIMS, "bond features (edge_attr)")


def graph_symmetry(level: str) -> Symmetry:
    """S_n acting on the dense inputs ``(adjacency, features, mask)`` and on graph-level
    (invariant), node-level (``[B, N, …]``) or edge-level (``[B, N, N, …]``) outputs."""
    output = {"graph": "trivial", "node": "nodes", "edge": "adjacency"}[level]
    return Symmetry("S_n", input=create_action("fields", "adjacency", "nodes", "mask"), output=output)


def describe_missing(title: str, release: str, pyg_call: str):
    """The one-line error of a missing or incomplete root (see :func:`~.pyg.open_pyg_dataset`)."""

    def describe(raw: list[str], processed: list[str]) -> str:
        raw_dir, processed_dir = Path(raw[0]).parent, Path(processed[0]).parent
        def names(paths: list[str]) -> str:
            return "{" + ",".join(Path(p).name for p in paths) + "}"

        return (f"data.path: {title} not found: expected the processed files {processed_dir}/"
                f"{names(processed)} or the raw files {raw_dir}/{names(raw)} ({release}). On a machine "
                f"with network access run {pyg_call} and copy the root folder here, or set data.download=true")

    return describe


def open_splits(cls, path: str | None, title: str, describe, limits: dict[str, int | None], *,
                download: bool, timeout: float, **kwargs) -> dict:
    """``{split: cls(path, split=split, **kwargs)}`` (offline first, see
    :func:`~.pyg.open_pyg_dataset`), each cut to its first ``limits[split]`` graphs."""
    from .pyg import open_pyg_dataset

    if path is None:
        raise ConfigError(f"data.path: {title} is read from a local torch_geometric root; set data.path to "
                          "it (or to an empty folder with data.download=true)")
    out = {}
    for split in SPLITS:
        ds = open_pyg_dataset(cls, path, describe, download=download, timeout=timeout, split=split, **kwargs)
        limit = limits.get(split)
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ConfigError(f"data.{split}: a positive number of graphs, got {limit!r}")
            ds = ds[:limit]
        out[split] = ds
    return out


def choose_max_nodes(splits: dict, max_nodes: int | None, title: str) -> int:
    """The dense size: ``max_nodes`` if given (checked against the largest graph), else
    the largest graph of the splits."""
    from .pyg import graph_sizes

    largest = max(int(graph_sizes(ds).max()) for ds in splits.values())
    if max_nodes is None:
        return largest
    if not isinstance(max_nodes, int) or max_nodes < 1:
        raise ConfigError(f"data.max_nodes: a positive number of nodes, got {max_nodes!r}")
    if max_nodes < largest:
        raise ConfigError(f"data.max_nodes: {title} has graphs of {largest} nodes, more than max_nodes="
                          f"{max_nodes}; raise it or leave it out (the largest graph is used)")
    return max_nodes


def lrgb_task(title: str, level: str, loss, metrics, main_metric: str, outputs: int, *, path: str | None,
              max_nodes: int | None, limits: dict[str, int | None], download: bool, timeout: float,
              release: str, split_metrics=None):
    """A :class:`~.task.Task` of ``LRGBDataset(path, title)`` (offline first) with dense
    batches of one-hot OGB features and ``level`` targets (see :class:`~.pyg.DenseGraphData`)."""
    from torch_geometric.datasets import LRGBDataset

    from .pyg import DenseGraphData
    from .task import Task

    describe = describe_missing(title, release, f"torch_geometric.datasets.LRGBDataset(root, {title!r})")
    splits = open_splits(LRGBDataset, path, title, describe, limits, download=download, timeout=timeout,
                         name=title)
    n = choose_max_nodes(splits, max_nodes, title)
    data = {k: DenseGraphData(ds, n, level, encode_atoms, encode_bonds) for k, ds in splits.items()}
    info = {"max_nodes": n, "num_nodes": n, "num_classes": outputs, "in_features": sum(ATOM_DIMS),
            "edge_dim": sum(BOND_DIMS), "readout": level}
    return Task(data["train"], data["val"], data["test"], graph_symmetry(level), loss, metrics, main_metric,
                info, split_metrics=split_metrics)


def weighted_node_cross_entropy(pred: Tensor, y: Tensor) -> Tensor:
    """The GNN benchmark's training loss for PATTERN / CLUSTER: cross-entropy of
    ``pred [B, N, C]`` against ``y [B, N]`` (``-1``: padding) with per-batch class weights
    ``(V − n_c) / V`` (``V`` real nodes of the batch, ``n_c`` of them in class ``c``; 0
    for a class absent from the batch)."""
    import torch.nn.functional as F

    real = y >= 0
    labels = y[real]
    classes = pred.shape[-1]
    size = torch.bincount(labels, minlength=classes).float()
    weight = (labels.numel() - size) / max(labels.numel(), 1) * (size > 0)
    return F.cross_entropy(pred[real].float(), labels, weight=weight.to(pred.device))


def gnn_benchmark_task(name: str, classes: int, *, path: str | None, max_nodes: int | None,
                       limits: dict[str, int | None], download: bool, timeout: float):
    """A :class:`~.task.Task` of ``GNNBenchmarkDataset(path, name)`` (``"PATTERN"`` or
    ``"CLUSTER"``, offline first): dense batches (adjacency ``[B, N, N]``, node features as
    stored, ``[B, N, F]``, mask), node labels ``[B, N]`` (``-1`` on padding), S_n with
    node-level outputs; the benchmark's weighted accuracy (main metric) and weighted loss."""
    from torch_geometric.datasets import GNNBenchmarkDataset

    from .benchmark_metrics import weighted_accuracy_metrics
    from .pyg import DenseGraphData
    from .task import Task

    release = f"{name}_v2.zip from data.pyg.org/datasets/benchmarking-gnns unpacked into raw"
    describe = describe_missing(name, release, f"torch_geometric.datasets.GNNBenchmarkDataset(root, {name!r})")
    splits = open_splits(GNNBenchmarkDataset, path, name, describe, limits, download=download,
                         timeout=timeout, name=name)
    n = choose_max_nodes(splits, max_nodes, name)
    data = {k: DenseGraphData(ds, n, "node") for k, ds in splits.items()}
    x = data["train"].__getitems__([0])[0][1]
    info = {"max_nodes": n, "num_nodes": n, "num_classes": classes, "in_features": x.shape[-1], "readout": "node"}
    return Task(data["train"], data["val"], data["test"], graph_symmetry("node"), weighted_node_cross_entropy,
                weighted_accuracy_metrics, "weighted_accuracy", info)
