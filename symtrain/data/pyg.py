"""Reading datasets that the user already has on disk through torch_geometric, without
downloading anything unless asked.

:func:`open_pyg_dataset` builds one of PyG's own dataset classes (``MD17``, ``ModelNet``,
…) on a local root, offline first: processed files are read, raw files are processed by
the class's own ``process()``, missing files raise :class:`MissingDataError` naming them.

``load_gnn_benchmark(root, "PATTERN", "train", max_nodes)`` reads
``root/PATTERN/processed/train_data.pt`` as written by
``torch_geometric.datasets.GNNBenchmarkDataset(root, "PATTERN")`` on a machine with
network access, and returns dense graphs (:class:`~symtrain.data.graphs.DenseGraphs`).
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import Tensor

from ..overrides import ConfigError
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


class MissingDataError(ConfigError):
    """A dataset's files are not under ``data.path`` (and downloading was not asked for,
    or failed). The message names the dataset, the files expected where, and how to get
    them on a connected machine."""


def _offline_class(cls):
    """``cls`` (a PyG dataset class) that never downloads unless asked: its
    ``_download`` step returns when the raw or the processed files are there, raises
    :class:`MissingDataError` before touching the disk when neither is and downloading
    is off, and otherwise downloads with a socket timeout, removing what a failed
    download left behind."""

    class Offline(cls):
        def __init__(self, *args, allow_download: bool, timeout: float, describe, **kwargs):
            self._allow_download, self._timeout, self._describe = allow_download, timeout, describe
            super().__init__(*args, **kwargs)

        def _download(self):
            from torch_geometric.data.dataset import files_exist

            if files_exist(self.raw_paths) or files_exist(self.processed_paths):
                return
            if not self._allow_download:
                raise MissingDataError(self._describe(self.raw_paths, self.processed_paths))
            root = Path(self.root)
            before = set(root.rglob("*")) if root.exists() else set()
            existed = root.exists()
            previous = socket.getdefaulttimeout()
            socket.setdefaulttimeout(self._timeout)  # PyG's urlopen has no timeout of its own
            try:
                super()._download()
            except (OSError, ValueError) as err:  # URLError, timeouts, bad archives
                _remove_new(root, before, existed)
                raise MissingDataError(
                    f"{self._describe(self.raw_paths, self.processed_paths)} Downloading them "
                    f"failed ({type(err).__name__}: {err}); nothing was left under {root}") from err
            finally:
                socket.setdefaulttimeout(previous)

    Offline.__name__ = Offline.__qualname__ = f"Offline{cls.__name__}"
    return Offline


def _remove_new(root: Path, before: set[Path], existed: bool) -> None:
    """Remove what appeared under ``root`` since ``before`` (``root`` too if it is new)."""
    import shutil

    if not existed:
        shutil.rmtree(root, ignore_errors=True)
        return
    for path in sorted(set(root.rglob("*")) - before, key=lambda p: len(p.parts)):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def open_pyg_dataset(cls, root: str | Path, describe, *, download: bool = False,
                     timeout: float = 60.0, **kwargs):
    """``cls(root, **kwargs)``, one of torch_geometric's dataset classes, offline first.

    A root holding the processed files is read as it is; one holding only the raw files
    is processed by the class's own ``process()``; one holding neither raises
    :class:`MissingDataError` with ``describe(raw_paths, processed_paths)`` (nothing is
    created on disk), unless ``download`` is true: then the class's ``download()`` runs
    with ``timeout`` seconds per network operation, and a failure raises
    :class:`MissingDataError` after removing what it wrote.
    """
    if timeout is None or not timeout > 0:
        raise ConfigError(f"data.timeout: a download timeout in seconds must be positive, got {timeout!r}")
    root = Path(root).expanduser()
    return _offline_class(cls)(str(root), allow_download=bool(download), timeout=float(timeout),
                               describe=describe, **kwargs)


class DenseGraphData(torch.utils.data.Dataset):
    """A split of PyG graphs served as dense batches, built when a batch is asked for (so
    the split is never held dense in memory).

    ``data[[i, j, …]]`` (``__getitems__``) returns ``((adjacency, features, mask), target)``:
    ``adjacency [B, N, N]`` (0/1) or ``[B, N, N, E]`` (``edge_encode(edge_attr)`` per
    edge), ``features [B, N, F]`` (``node_encode(x)``), ``mask [B, N]`` (True for real
    nodes, which come first), ``N = max_nodes``. ``target`` by ``level``:

    - ``"graph"``: ``y`` stacked, ``[B, T]`` float;
    - ``"node"``: ``y`` per node, ``[B, N]`` long, ``-1`` on padding;
    - ``"edge"``: ``[B, N, N]`` float, 1 at the pairs of ``edge_label_index`` whose
      ``edge_label`` is 1, 0 at the other pairs of real nodes, ``-1`` on padding.

    Args:
        graphs: a PyG dataset (indexable, ``len``) of ``Data``.
        node_encode / edge_encode: ``[n, k]`` raw features → ``[n, F]`` float (``None``:
            ``x`` as float; no edge features: adjacency ``[B, N, N]``).
    """

    LEVELS = ("graph", "node", "edge")

    def __init__(self, graphs, max_nodes: int, level: str, node_encode=None, edge_encode=None):
        if level not in self.LEVELS:
            raise ValueError(f"level: one of {self.LEVELS}, got {level!r}")
        self.graphs, self.max_nodes, self.level = graphs, max_nodes, level
        self.node_encode, self.edge_encode = node_encode, edge_encode

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]):
        from torch_geometric.data import Batch
        from torch_geometric.utils import to_dense_adj, to_dense_batch

        batch = Batch.from_data_list([self.graphs[int(i)] for i in indices])
        n = self.max_nodes
        x = batch.x if batch.x.dim() == 2 else batch.x[:, None]
        x = self.node_encode(x) if self.node_encode is not None else x.float()
        features, mask = to_dense_batch(x, batch.batch, max_num_nodes=n)
        if self.edge_encode is not None:
            attr = self.edge_encode(batch.edge_attr)
            adjacency = to_dense_adj(batch.edge_index, batch.batch, attr, max_num_nodes=n)
        else:
            adjacency = (to_dense_adj(batch.edge_index, batch.batch, max_num_nodes=n) > 0).float()
        return (adjacency, features, mask), self._target(batch, mask)

    def _target(self, batch, mask: Tensor) -> Tensor:
        from torch_geometric.utils import to_dense_adj, to_dense_batch

        if self.level == "graph":
            return batch.y.float().reshape(mask.shape[0], -1)
        if self.level == "node":
            return to_dense_batch(batch.y.long(), batch.batch, fill_value=-1, max_num_nodes=self.max_nodes)[0]
        keep = batch.edge_label == 1 if getattr(batch, "edge_label", None) is not None else slice(None)
        index = batch.edge_label_index[:, keep]
        contacts = to_dense_adj(index, batch.batch, max_num_nodes=self.max_nodes) > 0
        pair = mask[:, :, None] & mask[:, None, :]
        return torch.where(pair, contacts.float(), torch.full_like(contacts, -1, dtype=torch.float))


def graph_sizes(dataset) -> Tensor:
    """Node counts ``[len(dataset)]`` of a PyG ``InMemoryDataset`` (from its slices, without
    building the graphs)."""
    slices = getattr(dataset, "slices", None)
    if slices is not None and "x" in slices:
        return slices["x"].diff()[torch.as_tensor(list(dataset.indices()), dtype=torch.long)]
    return torch.tensor([dataset[i].num_nodes for i in range(len(dataset))])
