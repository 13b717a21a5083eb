"""What training needs to know about a dataset: :class:`Task` (splits, symmetry, loss,
metrics) and :class:`TensorData` (a split held as tensors), with the usual losses and
metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..symmetry import Symmetry

Metrics = Callable[[Any, Any], dict[str, tuple[Tensor, Tensor]]]


class TensorData(torch.utils.data.Dataset):
    """A split held as tensors: ``inputs`` and ``target``, each one tensor, a tuple or a
    dict of named fields (first axis the example). ``data[[i, j, …]]``
    (``__getitems__``) returns the batch ``(inputs, target)`` by tensor indexing, with
    tuples kept as tuples and dicts as dicts (a model then gets the dict as its one
    argument)."""

    def __init__(self, inputs: Tensor | tuple[Tensor, ...] | dict[str, Tensor],
                 target: Tensor | tuple[Tensor, ...] | dict[str, Tensor]):
        self.inputs, self.target = inputs, target
        sizes = {t.shape[0] for t in self._tensors()}
        if len(sizes) != 1:
            raise ValueError(f"inputs and target have different numbers of examples: {sorted(sizes)}")

    def _tensors(self) -> list[Tensor]:
        return [*_fields(self.inputs), *_fields(self.target)]

    def __len__(self) -> int:
        return _fields(self.target)[0].shape[0]

    def __getitem__(self, index: int):
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return take_examples(self.inputs, idx), take_examples(self.target, idx)


def _fields(x: Any) -> list[Tensor]:
    """The tensors of one tensor, a tuple or a dict of them."""
    if isinstance(x, dict):
        return list(x.values())
    return list(x) if isinstance(x, tuple) else [x]


def take_examples(x: Any, index: Tensor | slice) -> Any:
    """The examples ``index`` of a batch: a tensor, or a tuple / dict of tensors indexed
    alike (``take_examples(x, slice(0, n))``: the first ``n``)."""
    if isinstance(x, tuple):
        return tuple(t[index] for t in x)
    if isinstance(x, dict):
        return {k: t[index] for k, t in x.items()}
    return x[index]


def collate_batch(batch):
    """The batch is built by :meth:`TensorData.__getitems__` already."""
    return batch


@dataclass
class Task:
    """A dataset with what training needs to know about it.

    ``loss(pred, y)`` is a scalar mean over the batch; ``metrics(pred, y)`` returns, per
    name, per-example numerators and denominators ``([B], [B])`` (summed over the split,
    then divided); ``main_metric`` is the one reported first. ``info`` fills model
    arguments the recipe leaves out (``num_nodes``, ``num_classes``, ``in_features``, …).
    ``split_metrics`` (optional) makes, per name, a fresh stateful metric for the
    metrics that are not sums over examples (average precision): ``update(pred, y)``
    per batch, ``compute()`` once over the split.
    """

    train: TensorData
    val: TensorData
    test: TensorData
    symmetry: Symmetry
    loss: Callable[[Any, Any], Tensor]
    metrics: Metrics
    main_metric: str
    info: dict = field(default_factory=dict)
    split_metrics: Callable[[], dict[str, Any]] | None = None


def mse_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-example mean squared error."""
    err = (pred.float() - y.float()).pow(2).flatten(1).mean(1)
    return {"mse": (err, torch.ones_like(err))}


def accuracy_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Graph accuracy for ``pred [B, C]``, ``y [B]``; node accuracy (real nodes, ``y != -1``)
    for ``pred [B, N, C]``, ``y [B, N]``."""
    correct = (pred.argmax(-1) == y).float()
    if y.dim() == 1:
        return {"accuracy": (correct, torch.ones_like(correct))}
    real = (y >= 0).float()
    return {"accuracy": ((correct * real).sum(1), real.sum(1))}


def node_cross_entropy(pred: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of ``pred [B, N, C]`` against ``y [B, N]`` (``-1``: padding, ignored)."""
    return F.cross_entropy(pred.flatten(0, 1).float(), y.flatten(), ignore_index=-1)


def graph_cross_entropy(pred: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of ``pred [B, C]`` against ``y [B]``."""
    return F.cross_entropy(pred.float(), y)


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> list[Tensor]:
    """``[train, val, test]`` index tensors of a seeded random split of ``range(n)``."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum below 1")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    return [order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]]
