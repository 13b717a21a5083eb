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

Loss: binary cross-entropy over the labelled pairs, as LRGB trains: the contacts of
``edge_label_index`` (``edge_label`` 1) and, for each contact ``(i, j)``, ``negatives``
(LRGB: 2) non-contacts ``(i, k)`` of the same row drawn at every call, uniformly and
without repeats among the row's real nodes that are not its contacts, ``i`` itself
included (LRGB's ``structured_neg_sampling_transform`` with ``contains_neg_self_loops``,
which resamples the negatives each time a graph is loaded and, like this loss, ignores
any other labels of the release, which stores only the contacts). ``negatives=0`` is BCE
over the contacts alone: the LPS code's criterion on ``edge_label_index`` as PyG's
``LRGBDataset`` stores it (it adds no negatives). The metrics rank every pair, whatever
the loss.

``data.path`` is the ``root`` of ``LRGBDataset(root, "PCQM-Contact")``
(``<root>/pcqm-contact/{raw,processed}/{train,val,test}.pt``), read offline first as
for :mod:`~.peptides_func`.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from ..domains import NON_NEGATIVE_INT, check_args
from .benchmark_metrics import contact_ranking_metrics
from .registry import register_dataset
from .task import Task

RELEASE = "the LRGB release pcqmcontact.zip unpacked, its pcqmcontact folder renamed raw"


def pair_bce(pred: Tensor, y: Tensor, negatives: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Binary cross-entropy of pair logits ``pred [B, N, N(, 1)]`` against ``y [B, N, N]``
    (1: contact, 0: another pair of real nodes, -1: padding) over the contacts and, per
    contact, ``negatives`` non-contacts of its row drawn uniformly without repeats (the
    row's real nodes that are not contacts, the node itself included; fewer where the row
    has fewer), as LRGB's structured negative sampling. Mean over the labelled pairs; 0
    for a batch without contacts."""
    if pred.dim() == 4:
        pred = pred.squeeze(-1)
    positive = y == 1
    per_row = positive.sum(-1, keepdim=True)  # [B, N, 1]
    candidate = (y == 0) & (per_row > 0)
    keys = torch.rand(y.shape, generator=generator, device=y.device if generator is None else generator.device)
    keys = keys.to(y.device).masked_fill(~candidate, 2.0)  # non-candidates rank last
    rank = keys.argsort(-1).argsort(-1)  # rank of each pair's key within its row
    chosen = candidate & (rank < negatives * per_row)
    keep = positive | chosen
    if not bool(keep.any()):
        return pred.sum() * 0.0
    return F.binary_cross_entropy_with_logits(pred.float()[keep], positive[keep].float())


@register_dataset("pcqm_contact")
@check_args(negatives=NON_NEGATIVE_INT)
def pcqm_contact_task(path: str | None = None, max_nodes: int | None = None, train: int | None = None,
                      val: int | None = None, test: int | None = None, download: bool = False,
                      timeout: float = 60.0, negatives: int = 2) -> Task:
    """PCQM-Contact from the local root ``path`` (arguments as ``peptides_func``);
    ``negatives``: non-contacts drawn per contact for the loss (LRGB: 2; 0: the contacts
    alone, the LPS code's criterion), see :func:`pair_bce`."""
    from .benchmark_graphs import lrgb_task

    loss = partial(pair_bce, negatives=negatives)
    return lrgb_task('PCQM-Contact', 'edge', loss, contact_ranking_metrics, 'mrr_filtered', 1, path=path,
                     max_nodes=max_nodes, limits={"train": train, "val": val, "test": test}, download=download,
                     timeout=timeout,
                     release=RELEASE)
