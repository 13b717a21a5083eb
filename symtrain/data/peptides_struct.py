"""The ``peptides_struct`` dataset: LRGB Peptides-struct through torch_geometric's own
``LRGBDataset``.

The same 15,535 peptides as Peptides-func, 11 structural properties per peptide
(graph-level regression, on the targets as the dataset stores them: LRGB normalised
them already); official splits. Group S_n on the atoms, outputs invariant. Metric: mean
absolute error over graphs and targets (``mae``, lower is better); loss: L1, as LRGB's
configs. ``data.path`` is the ``root`` of ``LRGBDataset(root, "Peptides-struct")``
(``<root>/peptides-struct/{raw,processed}/{train,val,test}.pt``), read offline first as
for :mod:`~.peptides_func`. Target ``[B, 11]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .benchmark_metrics import mae_metrics
from .registry import register_dataset
from .task import Task

RELEASE = "the LRGB release peptidesstruct.zip unpacked, its peptidesstruct folder renamed raw"


def l1_loss(pred: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error of ``pred [B, T]`` against ``y [B, T]``."""
    return F.l1_loss(pred.float(), y.float())


@register_dataset("peptides_struct")
def peptides_struct_task(path: str | None = None, max_nodes: int | None = None, train: int | None = None,
                         val: int | None = None, test: int | None = None, download: bool = False,
                         timeout: float = 60.0) -> Task:
    """Peptides-struct from the local root ``path`` (arguments as ``peptides_func``)."""
    from .benchmark_graphs import lrgb_task

    return lrgb_task('Peptides-struct', 'graph', l1_loss, mae_metrics, 'mae', 11, path=path, max_nodes=max_nodes,
                     limits={"train": train, "val": val, "test": test}, download=download, timeout=timeout,
                     release=RELEASE)
