"""The ``peptides_func`` dataset: LRGB Peptides-func (Dwivedi et al., NeurIPS 2022 datasets
track) through torch_geometric's own ``LRGBDataset``.

15,535 peptides (about 151 atoms each), 10 binary functions per peptide (graph-level,
multilabel); official train/val/test splits. Group S_n on the atoms, outputs invariant.
Metric: average precision over the 10 tasks (:func:`~.benchmark_metrics.multilabel_average_precision`,
OGB's ``eval_ap``), main metric ``ap`` (higher is better). Loss: binary cross-entropy on
the logits, missing (NaN) labels left out.

**Data.** ``data.path`` is the ``root`` of ``LRGBDataset(root, "Peptides-func")``:
``<root>/peptides-func/processed/{train,val,test}.pt`` is read as it is; a root holding
only the release's raw files ``<root>/peptides-func/raw/{train,val,test}.pt`` is
processed by PyG's own ``process()``; nothing is downloaded unless ``download=True``
(with ``timeout`` seconds per network operation). Batches are dense
(:class:`~.pyg.DenseGraphData`): one-hot OGB bond features ``[B, N, N, 13]``, atom
features ``[B, N, 174]`` (see :mod:`~.benchmark_graphs`), mask ``[B, N]``; target ``[B, 10]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .benchmark_metrics import AveragePrecision
from .registry import register_dataset
from .task import Task

RELEASE = "the LRGB release peptidesfunc.zip unpacked, its peptidesfunc folder renamed raw"


def masked_bce(pred: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy of logits ``pred [B, T]`` against ``y [B, T]`` (NaN: missing, left out)."""
    known = ~torch.isnan(y)
    return F.binary_cross_entropy_with_logits(pred.float()[known], y[known].float())


def ap_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """The loss as a per-example metric (AP is a split metric, see ``split_metrics``)."""
    known = ~torch.isnan(y)
    bce = F.binary_cross_entropy_with_logits(pred.float(), torch.nan_to_num(y.float()), reduction="none")
    return {"bce": ((bce * known).sum(1), known.sum(1).float())}


@register_dataset("peptides_func")
def peptides_func_task(path: str | None = None, max_nodes: int | None = None, train: int | None = None,
                       val: int | None = None, test: int | None = None, download: bool = False,
                       timeout: float = 60.0) -> Task:
    """Peptides-func from the local root ``path``; ``train``/``val``/``test`` keep the
    first graphs of each split; ``max_nodes`` (default: the largest graph) sets the dense size."""
    from .benchmark_graphs import lrgb_task

    return lrgb_task('Peptides-func', 'graph', masked_bce, ap_metrics, 'ap', 10, path=path, max_nodes=max_nodes,
                     limits={"train": train, "val": val, "test": test}, download=download, timeout=timeout,
                     release=RELEASE, split_metrics=lambda: {"ap": AveragePrecision()})
