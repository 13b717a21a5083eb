"""The metrics of the real graph benchmarks, as the benchmarks define them.

- :func:`multilabel_average_precision` (Peptides-func): torchmetrics'
  ``MultilabelAveragePrecision`` per task (the step-wise AP of scikit-learn, no
  interpolation), then the mean over the tasks that have at least one positive and one
  negative label in the split, as OGB's ``eval_ap`` (which LRGB uses) does. Missing labels
  (NaN) are left out of their task. torchmetrics' own ``average="macro"`` differs: it
  keeps a task with no positive label, whose AP is 0 with a warning (tested).
  Not a sum over examples, so it is a *split metric* (:class:`AveragePrecision`), updated
  batch by batch and computed once over the whole split.
- :func:`mae_metrics` (Peptides-struct): mean absolute error over graphs and targets, on
  the targets as the dataset stores them (same value as torchmetrics'
  ``MeanAbsoluteError``).
- :func:`contact_ranking_metrics` (PCQM-Contact): LRGB's ranking metrics, named as in
  LRGB's and the LPS code. Per graph, each true contact ``(i, j)`` is ranked against the
  scores of row ``i``; reciprocal rank and Hits@1/3/10 are averaged over the contacts of
  the graph, then over graphs. Three variants: *raw* (``mrr``, ``hits@k``: every other
  node of the row competes, other contacts and ``i`` itself included), *filtered*
  (``mrr_filtered``: the row's other contacts are left out) and *filtered, no self*
  (``mrr_filtered_noself``: also ``i`` itself). A graph without contacts counts 0 in the
  raw average and is left out of the filtered ones (as the LPS code does). Ties count
  half (the mean of the optimistic and pessimistic ranks, as OGB's current link
  evaluator does; LRGB's ``argsort`` breaks ties arbitrarily).
- :func:`weighted_accuracy_metrics` (PATTERN, CLUSTER): the GNN benchmark's accuracy:
  per evaluation batch, the mean over the classes present of the class's recall, then
  the mean over batches (each batch counts once, whatever its size: not the same as the
  recall over the whole split, tested). It is returned as per-example shares of the
  batch's value, so the trainer's sums over a split give the mean over batches.
"""

from __future__ import annotations

import torch
from torch import Tensor

HITS_AT = (1, 3, 10)


class AveragePrecision:
    """Mean AP over tasks of a multilabel split, updated per batch (``update(pred, y)``:
    logits or scores ``[B, T]``, labels ``[B, T]`` in {0, 1} or NaN for missing) and
    computed over everything seen (``compute()`` → 0-dim tensor). See
    :func:`multilabel_average_precision`."""

    def __init__(self):
        self.preds: list[Tensor] = []
        self.labels: list[Tensor] = []

    def update(self, pred: Tensor, y: Tensor) -> None:
        if pred.shape != y.shape or pred.dim() != 2:
            raise ValueError(f"AveragePrecision expects pred and labels [B, T], got {tuple(pred.shape)} "
                             f"and {tuple(y.shape)}")
        self.preds.append(pred.detach().float().cpu())
        self.labels.append(y.detach().float().cpu())

    def compute(self) -> Tensor:
        return multilabel_average_precision(torch.cat(self.preds), torch.cat(self.labels))


def multilabel_average_precision(pred: Tensor, y: Tensor) -> Tensor:
    """Mean over tasks of the average precision of ``pred [M, T]`` (higher = more likely
    positive) against ``y [M, T]`` (0/1, NaN = missing), skipping tasks with no positive
    or no negative label (OGB/LRGB ``eval_ap``). NaN when no task qualifies."""
    from torchmetrics.functional.classification import binary_average_precision

    values = []
    for t in range(y.shape[1]):
        known = ~torch.isnan(y[:, t])
        labels = y[known, t].long()
        if labels.numel() == 0 or labels.min() == labels.max():
            continue
        values.append(binary_average_precision(pred[known, t].float(), labels))
    return torch.stack(values).mean() if values else torch.tensor(float("nan"))


def mae_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-graph absolute error ``[B, T]`` summed, counted over the ``T`` targets: the
    split's value is the MAE over all graphs and targets."""
    err = (pred.float() - y.float()).abs().flatten(1)
    return {"mae": (err.sum(1), torch.full_like(err[:, 0], err.shape[1]))}


def contact_ranking_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """LRGB's ranking metrics of ``pred [B, N, N]`` (pair scores; ``[B, N, N, 1]`` is
    squeezed) against ``y [B, N, N]``: 1 for a contact, 0 for another pair of real nodes,
    -1 for padding. Per graph: ``mrr``, ``hits@k`` (raw; a graph without contacts counts
    0 of 1), ``mrr_filtered``, ``hits@k_filtered``, ``mrr_filtered_noself``,
    ``hits@k_filtered_noself`` (a graph without contacts counts 0 of 0).
    """
    if pred.dim() == 4:
        pred = pred.squeeze(-1)
    if pred.shape != y.shape or pred.dim() != 3 or pred.shape[1] != pred.shape[2]:
        raise ValueError(f"contact ranking expects pred and labels [B, N, N], got {tuple(pred.shape)} "
                         f"and {tuple(y.shape)}")
    scores = pred.detach().float()
    positive = y == 1
    real = y >= 0                                   # pairs of real nodes
    eye = torch.eye(y.shape[-1], dtype=torch.bool, device=y.device)
    variants = {"": real, "_filtered": real & ~positive, "_filtered_noself": real & ~positive & ~eye}
    count = positive.sum((1, 2)).float()
    has = (count > 0).float()
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for suffix, others in variants.items():
        # each contact (i, j) against the other competitors of row i (j itself never competes with itself)
        s_row = scores[:, :, None, :]               # [B, N(i), 1, N(k)]
        s_pair = scores[:, :, :, None]              # [B, N(i), N(j), 1]
        competes = others[:, :, None, :] & ~eye[None, None]   # [B, i, j, k], k ≠ j
        above = ((s_row > s_pair) & competes).sum(-1).float()
        ties = ((s_row == s_pair) & competes).sum(-1).float()
        rank = 1 + above + 0.5 * ties               # [B, N, N]
        per_graph = {"mrr": 1 / rank, **{f"hits@{k}": (rank <= k).float() for k in HITS_AT}}
        for name, value in per_graph.items():
            mean = (value * positive).sum((1, 2)) / count.clamp_min(1)
            out[name + suffix] = (mean * has, has if suffix else torch.ones_like(has))
    return out


def weighted_accuracy_metrics(pred: Tensor, y: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """The GNN benchmark's weighted accuracy of ``pred [B, N, C]`` against ``y [B, N]``
    (``-1``: padding) for this batch, in percent: ``100 × mean over the classes present of
    (correct in class / nodes in class)``; returned as ``(value / B, 1 / B)`` per example,
    so summing a split's batches gives the mean over batches. Also the plain node
    ``accuracy`` (a fraction, over all nodes of the split)."""
    real = y >= 0
    labels = y[real]
    guess = pred.argmax(-1)[real]
    classes = pred.shape[-1]
    size = torch.bincount(labels, minlength=classes).float()
    right = torch.bincount(labels[guess == labels], minlength=classes).float()
    present = size > 0
    value = 100 * (right[present] / size[present]).mean() if bool(present.any()) else pred.new_zeros(())
    b = y.shape[0]
    share = torch.full((b,), 1.0 / b, device=pred.device)
    correct = ((pred.argmax(-1) == y) & real).float()
    return {"weighted_accuracy": (share * value.float(), share),
            "accuracy": (correct.sum(1), real.float().sum(1))}
