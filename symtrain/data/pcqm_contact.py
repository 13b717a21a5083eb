"""The ``pcqm_contact`` dataset: LRGB PCQM-Contact through torch_geometric's own ``LRGBDataset``.

529,434 molecules (about 30 atoms each); the task is to predict which pairs of atoms far
apart in the graph are in 3-D contact (link prediction, edge-level outputs). Group S_n
on the atoms; outputs are pair scores ``[B, N, N, 1]`` that move as the adjacency does
(``P·S·Pᵀ``). Target ``[B, N, N]``: 1 for a contact of ``edge_label_index``, 0 for
another pair of real atoms, -1 on padding (the release stores only the contacts).
Metrics: LRGB's ranking metrics (:func:`~.benchmark_metrics.contact_ranking_metrics`),
named as in LRGB's and the LPS code: ``mrr`` / ``hits@k`` (raw), ``mrr_filtered`` /
``hits@k_filtered``, ``mrr_filtered_noself`` / ``hits@k_filtered_noself``. Main metric
``mrr_filtered``, the variant LRGB's paper reports. (The LPS code logs raw Hits@1/3/10
and all three MRRs; the Hits in the LPS paper can only be the raw ones.)

Loss: binary cross-entropy over every pair of distinct real atoms (contacts positive,
the rest negative). LRGB's GNNs and the LPS code train on ``edge_label_index`` with
sampled negatives instead; the dense map here scores every pair anyway, so all of them
are used (a difference of the training signal, not of the metric).

``data.path`` is the ``root`` of ``LRGBDataset(root, "PCQM-Contact")``
(``<root>/pcqm-contact/{raw,processed}/{train,val,test}.pt``), read offline first as
for :mod:`~.peptides_func`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .benchmark_metrics import contact_ranking_metrics
from .registry import register_dataset
from .task import Task

RELEASE = "the LRGB release pcqmcontact.zip unpacked, its pcqmcontact folder renamed raw"


def pair_bce(pred: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy of pair logits ``pred [B, N, N(, 1)]`` against ``y [B, N, N]``
    over the pairs of distinct real nodes (``y >= 0`` off the diagonal)."""
    if pred.dim() == 4:
        pred = pred.squeeze(-1)
    eye = torch.eye(y.shape[-1], dtype=torch.bool, device=y.device)
    keep = (y >= 0) & ~eye
    return F.binary_cross_entropy_with_logits(pred.float()[keep], y[keep].float())


@register_dataset("pcqm_contact")
def pcqm_contact_task(path: str | None = None, max_nodes: int | None = None, train: int | None = None,
                      val: int | None = None, test: int | None = None, download: bool = False,
                      timeout: float = 60.0) -> Task:
    """PCQM-Contact from the local root ``path`` (arguments as ``peptides_func``)."""
    from .benchmark_graphs import lrgb_task

    return lrgb_task('PCQM-Contact', 'edge', pair_bce, contact_ranking_metrics, 'mrr_filtered', 1, path=path,
                     max_nodes=max_nodes, limits={"train": train, "val": val, "test": test}, download=download,
                     timeout=timeout,
                     release=RELEASE)
