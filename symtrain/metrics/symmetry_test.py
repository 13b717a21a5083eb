"""Does the data have the symmetry? A two-sample test of ``P(x, y) = P(g·x, g·y)``.

Before symmetrizing a model, ask whether the data itself is symmetric: if the
distribution of examples does not change when a random group element moves them, a
classifier cannot tell original examples from moved ones. :func:`symmetry_test`

1. takes ``samples`` examples (inputs, and targets where the symmetry acts on them: a
   dataset can be symmetric in ``x`` alone but not in ``(x, y)``);
2. moves a random half of them by one random group element each (``Symmetry.sample``
   with the input's context, then ``act_input`` / ``act_output``); the other half is
   kept. Each example appears once, either as itself or moved, so all points are
   independent;
3. trains a small MLP on a training split to tell moved (label 1) from kept (label 0),
   reading each example as rows of numbers built from the actions' own capabilities
   (:meth:`~symtrain.actions.Action.rows`, else :meth:`~symtrain.actions.Action.node_view`),
   integer fields one-hot encoded, every column standardised;
4. reports the classifier's AUC on the held-out split and a permutation-test p-value;
   for a small finite group, the AUC of each group element (which elements break the
   symmetry most).

Reading the result: AUC ≈ 0.5 with a large p — the data look symmetric (at this sample
size and classifier strength; the test can only ever fail to find a difference). AUC
well above 0.5 with a small p — the symmetry is broken: the data have a preferred
orientation, ordering or direction, or the targets do not move as the symmetry says.
Exact methods (group averaging, frames, equivariant networks) then discard information
the data hold; relaxed ones (REMUL's soft penalty, approximately equivariant networks,
augmentation) are the fitting choice, and the per-element AUCs say which elements to
relax.

**Translations.** No distribution is invariant to every translation (there is no
uniform distribution on ``R^d``), so for groups with translations (E(d), SE(d)) the test
asks about the compact part: each drawn rotation acts about the example's centroid
(``context.centroid``; about the origin when the input has no centroid), which keeps the
centroid where it was.

**The permutation test** shuffles the original/moved labels of the held-out scores
(``permutations`` times, seeded) and counts how often the shuffled AUC reaches the
observed one: ``p = (1 + #{AUC_perm ≥ AUC}) / (1 + permutations)``. Under the null
hypothesis the held-out points are independent draws from one distribution and the
classifier was fitted on other points, so the labels are exchangeable given the scores:
shuffling them is an exact test, and retraining per permutation would cost
``permutations`` trainings for no gain in validity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..actions.base import Action
from ..data.task import take_examples
from ..domains import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Count, Real, check_args
from ..errors import SymmetryError, UnsupportedGroupError
from ..groups.base import Element, Group, GroupContext, element_repeat, element_tile, iter_factors
from ..symmetry import Symmetry, reference_tensor

#: Integer fields with at most this many distinct values are one-hot encoded.
MAX_CATEGORIES = 32


class SymmetryTestError(SymmetryError):
    """A bad argument to :func:`symmetry_test` (sample counts, fractions, a dataset it
    cannot read)."""


@dataclass
class SymmetryTestResult:
    """The outcome of :func:`symmetry_test`.

    - ``auc``: held-out AUC of the classifier telling moved from kept examples (0.5:
      indistinguishable, 1: always told apart);
    - ``p_value``: permutation-test p-value of ``auc`` (one-sided, ``≥ 1/(1+permutations)``);
    - ``train_auc``: the same AUC on the classifier's training split (far above ``auc``:
      the classifier overfits; both near 0.5: it found nothing);
    - ``samples``, ``train``, ``test``: examples used, and the two splits' sizes;
    - ``features``: columns the classifier reads per example;
    - ``per_element``: for a finite group of at most ``max_elements`` elements, one row
      per element, ``{"element": k, "label": str, "auc": float, "count": int}`` (``k``
      indexes ``group.elements()``; ``auc`` compares the held-out kept examples with the
      held-out examples moved by that element, ``nan`` if none was), most
      distinguishable first; else empty.
    """

    auc: float
    p_value: float
    train_auc: float
    samples: int
    train: int
    test: int
    features: int
    permutations: int
    targets: bool
    group: str
    per_element: list[dict] = field(default_factory=list)


@check_args(samples=Count(8, optional=True, what="so that each split holds both kept and moved examples"),
            test_fraction=Real(0, 1, low_open=True, high_open=True), hidden=POSITIVE_INT, steps=POSITIVE_INT,
            lr=POSITIVE, weight_decay=NON_NEGATIVE, permutations=POSITIVE_INT, max_elements=POSITIVE_INT,
            seed=Count(None))
def symmetry_test(dataset: Any, symmetry: Symmetry, *, samples: int | None = None,
                  test_fraction: float = 0.5, targets: bool = True, hidden: int = 128,
                  steps: int = 300, lr: float = 1e-3, weight_decay: float = 1e-4,
                  permutations: int = 1000, max_elements: int = 64,
                  seed: int = 0) -> SymmetryTestResult:
    """Test whether ``dataset`` is distributed symmetrically under ``symmetry``.

    Args:
        dataset: a dataset whose ``__getitems__(indices)`` returns a batch
            ``(inputs, targets)`` (:class:`~symtrain.data.task.TensorData`, every split of
            a :class:`~symtrain.data.task.Task`), or a pair ``(inputs, targets)`` of
            batched data (``targets`` may be ``None``); inputs fit ``symmetry.input``,
            targets ``symmetry.output``.
        symmetry: the group and how it acts on inputs and targets.
        samples: examples to use (a seeded random subset; ``None``: all, at least 8).
        test_fraction: share of the examples held out to score the classifier.
        targets: whether the classifier also sees the targets (moved by the output
            action): tests ``P(x, y)`` rather than ``P(x)``.
        hidden, steps, lr, weight_decay: the classifier, an MLP with two hidden layers
            trained full-batch with AdamW on the binary cross-entropy.
        permutations: label shufflings for the p-value.
        max_elements: largest finite group whose elements get an AUC each.
        seed: seeds the subset, the split, the group elements, the classifier's
            initialisation and the shufflings (the global RNG is left untouched).

    Returns:
        a :class:`SymmetryTestResult`.
    """
    gen = torch.Generator().manual_seed(seed)
    x, y = _read(dataset, symmetry, samples, gen)
    y = y if targets else None
    n = symmetry.input.batch_size(x)
    moved = torch.zeros(n, dtype=torch.bool)
    moved[torch.randperm(n, generator=gen)[: n // 2]] = True
    is_test = _stratified_test_mask(moved, test_fraction, gen)
    kept_idx, moved_idx = (~moved).nonzero()[:, 0], moved.nonzero()[:, 0]

    x_kept, x_moved = take_examples(x, kept_idx), take_examples(x, moved_idx)
    y_kept = None if y is None else take_examples(y, kept_idx)
    y_moved = None if y is None else take_examples(y, moved_idx)
    context = symmetry.context(x_moved)
    ref = reference_tensor(x_moved)
    dtype = ref.dtype if ref.is_floating_point() else None
    g = _about_centroid(symmetry.group, symmetry.sample(context, generator=gen, device=ref.device, dtype=dtype),
                        context)
    x_moved = symmetry.act_input(g, x_moved, context)
    if y_moved is not None:
        y_moved = symmetry.act_output(g, y_moved, context)

    feats = _encode(_features(symmetry, x_kept, y_kept), _features(symmetry, x_moved, y_moved))
    labels = torch.cat([torch.zeros(len(kept_idx)), torch.ones(len(moved_idx))])
    test = torch.cat([is_test[kept_idx], is_test[moved_idx]])
    train = ~test
    mean, std = feats[train].mean(0), feats[train].std(0)
    feats = (feats - mean) / torch.where(std > 1e-8, std, torch.ones_like(std))

    scores = _fit_scores(feats, labels, train, hidden, steps, lr, weight_decay, seed)
    auc = float(rank_auc(scores[test], labels[test]))
    p_value = permutation_p_value(scores[test], labels[test], permutations, gen)
    per_element = _per_element(symmetry, g, context, scores, labels, test, len(kept_idx), max_elements)
    return SymmetryTestResult(
        auc=auc, p_value=p_value, train_auc=float(rank_auc(scores[train], labels[train])), samples=n,
        train=int(train.sum()), test=int(test.sum()), features=feats.shape[1], permutations=permutations,
        targets=y is not None, group=str(symmetry.group), per_element=per_element)


# --- the AUC and its permutation test ---------------------------------------------------
def rank_auc(scores: Tensor, labels: Tensor) -> Tensor:
    """Area under the ROC curve of ``scores`` ``[m]`` for binary ``labels`` ``[m]`` (1:
    positive), by the Mann–Whitney rank sum with tied scores given their average rank:
    the probability that a random positive scores above a random negative, ties counting
    one half. A scalar tensor (float64).

    >>> float(rank_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])))
    0.75
    """
    labels = labels.reshape(-1).to(torch.float64)
    n1 = labels.sum()
    n0 = labels.numel() - n1
    if n1 == 0 or n0 == 0:
        raise SymmetryTestError(f"AUC needs both classes, got {int(n1)} positives and {int(n0)} negatives")
    return _auc_from_ranks(_average_ranks(scores.reshape(-1)), labels, n1, n0)


def permutation_p_value(scores: Tensor, labels: Tensor, permutations: int,
                        generator: torch.Generator | None = None) -> float:
    """One-sided p-value of ``rank_auc(scores, labels)`` against ``permutations`` random
    shufflings of ``labels`` (``scores``, ``labels``: ``[m]``):
    ``(1 + #{AUC_perm ≥ AUC}) / (1 + permutations)``."""
    labels = labels.reshape(-1).to(torch.float64)
    n1 = labels.sum()
    n0 = labels.numel() - n1
    ranks = _average_ranks(scores.reshape(-1))
    observed = _auc_from_ranks(ranks, labels, n1, n0)
    hits = 0
    for start in range(0, permutations, 256):  # [chunk, m] shufflings at a time
        chunk = min(256, permutations - start)
        order = torch.rand(chunk, labels.numel(), generator=generator).argsort(1)
        shuffled = _auc_from_ranks(ranks, labels[order], n1, n0)
        hits += int((shuffled >= observed - 1e-12).sum())
    return (1 + hits) / (1 + permutations)


def _average_ranks(scores: Tensor) -> Tensor:
    """1-based ranks ``[m]`` of ``scores``, tied values sharing their average rank."""
    s = scores.detach().to(torch.float64)
    order = s.argsort()
    _, inverse, counts = torch.unique_consecutive(s[order], return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(s)
    ranks[order] = average[inverse]
    return ranks


def _auc_from_ranks(ranks: Tensor, labels: Tensor, n1: Tensor, n0: Tensor) -> Tensor:
    """AUC from ranks ``[m]`` and labels ``[..., m]`` (one AUC per row of labels)."""
    return ((labels * ranks).sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


# --- reading the data -------------------------------------------------------------------
def _read(dataset: Any, symmetry: Symmetry, samples: int | None, gen: torch.Generator) -> tuple[Any, Any]:
    """``(inputs, targets)`` of a seeded random subset of ``samples`` examples."""
    if hasattr(dataset, "__getitems__") and hasattr(dataset, "__len__"):
        total = len(dataset)
        _check_count(samples, total)
        index = torch.randperm(total, generator=gen)[: samples or total]
        x, y = dataset.__getitems__(index.tolist())
    elif isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        x, y = dataset
        symmetry.check_input(x)
        total = symmetry.input.batch_size(x)
        _check_count(samples, total)
        index = torch.randperm(total, generator=gen)[: samples or total]
        x = take_examples(x, index)
        y = None if y is None else take_examples(y, index)
    else:
        raise SymmetryTestError(f"dataset: expected a dataset with __len__ and __getitems__ (a TensorData) "
                                f"or a pair (inputs, targets), got {type(dataset).__name__}")
    symmetry.check_input(x)
    return x, y


def _check_count(samples: int | None, total: int) -> None:
    if samples is not None and samples > total:
        raise SymmetryTestError(f"samples={samples}: the dataset has only {total} examples")
    if (samples or total) < 8:
        raise SymmetryTestError(f"the dataset has {total} examples; the test needs at least 8")


def _stratified_test_mask(moved: Tensor, test_fraction: float, gen: torch.Generator) -> Tensor:
    """``[n]`` bool: ``test_fraction`` of the moved and of the kept examples (at least one
    of each in either split)."""
    test = torch.zeros_like(moved)
    for members in (moved.nonzero()[:, 0], (~moved).nonzero()[:, 0]):
        k = min(max(1, round(test_fraction * len(members))), len(members) - 1)
        test[members[torch.randperm(len(members), generator=gen)[:k]]] = True
    return test


def _about_centroid(group: Group, g: Element, context: GroupContext) -> Element:
    """``g`` with the translation of every factor that has translations replaced so that
    the rotation acts about the example's centroid (``t = c − R c``; ``t = 0`` without a
    centroid): the moved example keeps its centroid."""
    def about(rot: Tensor) -> Tensor:
        if context.centroid is None:
            return rot.new_zeros(rot.shape[0], rot.shape[-1])
        c = context.centroid.to(rot.dtype)
        return c - (rot @ c[..., None])[..., 0]
    return _set_translations(group, g, about)


def _set_translations(group: Group, g: Element, translation: Callable[[Tensor], Tensor]) -> Element:
    """``g`` with the translation part of every factor that has translations set to
    ``translation(rotation)`` ``[B, d]`` (``rotation``: that factor's ``[B, d, d]``)."""
    parts = []
    for factor, gf in iter_factors(group, g):
        if factor.has_translations:
            rot = factor.rotation(gf)
            gf = factor.from_parts(rot, translation(rot))
        parts.append(gf)
    return group.join(tuple(parts))


def _centred(symmetry: Symmetry, x: Any, y: Any) -> tuple[Any, Any, Tensor | None]:
    """``(x, y)`` translated so that the input's centroid is at the origin, and the
    centroids ``[B, d]``, for groups with translations and inputs with a centroid; else
    ``(x, y, None)``. The moves keep each centroid, so the classifier reads the centroid
    once and the rest relative to it: the same information as the raw data, but a
    far-off or scattered position no longer hides the shape from a small MLP."""
    context = symmetry.context(x)
    group = symmetry.group
    centroid = context.centroid
    if centroid is None or not any(f.has_translations for f in group.factors):
        return x, y, None
    ref = reference_tensor(x)
    ident = group.identity(symmetry.input.batch_size(x), context=context, device=ref.device,
                           dtype=ref.dtype if ref.is_floating_point() else None)
    to_origin = _set_translations(group, ident, lambda rot: -centroid.to(rot.dtype))
    x = symmetry.act_input(to_origin, x, context)
    y = None if y is None else symmetry.act_output(to_origin, y, context)
    return x, y, centroid


# --- the classifier's input -------------------------------------------------------------
def _features(symmetry: Symmetry, x: Any, y: Any) -> list[Tensor]:
    """One ``[B, D_i]`` tensor per leaf of the input (and of the targets), relative to
    the centroid (then the centroid itself) for groups with translations."""
    context = symmetry.context(x)
    x, y, centroid = _centred(symmetry, x, y)
    out = [_leaf_rows(a, v, context) for a, v in symmetry.input.leaves(x)]
    if y is not None:
        out += [_leaf_rows(a, v, context) for a, v in symmetry.output.leaves(y)]
    return out if centroid is None else out + [centroid]


def _leaf_rows(action: Action, value: Any, context: GroupContext) -> Tensor:
    """``value`` as ``[B, D]``: the action's rows, else its dense node view flattened."""
    batch = context.batch_size if context.batch_size else action.batch_size(value)
    try:
        return action.rows(value, GroupContext(batch_size=batch))
    except TypeError:
        pass
    try:
        view = action.node_view(value, context)
    except UnsupportedGroupError as err:
        raise SymmetryTestError(f"cannot read {action!r}'s data as rows of numbers for the classifier: "
                                f"its rows() refuses {type(value).__name__} and {err}") from None
    parts = [t for t in (view.features, view.adjacency, view.points, *view.vectors, view.mask) if t is not None]
    if not parts:
        raise SymmetryTestError(f"{action!r}'s node view holds no data for the classifier")
    return torch.cat([t.reshape(batch, -1).to(torch.float64) for t in parts], 1)


def _encode(kept: list[Tensor], moved: list[Tensor]) -> Tensor:
    """The kept examples' leaves then the moved ones' as one float32 matrix
    ``[n_kept + n_moved, D]``: integer leaves with at most :data:`MAX_CATEGORIES`
    distinct values one-hot encoded (the categories read from both sets)."""
    columns = []
    for a, b in zip(kept, moved, strict=True):
        leaf = torch.cat([a, b])
        if not leaf.is_floating_point() and leaf.dtype != torch.bool:
            values = torch.unique(leaf)
            if values.numel() <= MAX_CATEGORIES:
                leaf = (leaf[..., None] == values).flatten(1)
        columns.append(leaf.to(torch.float32))
    return torch.cat(columns, 1)


# --- the classifier ---------------------------------------------------------------------
def _fit_scores(feats: Tensor, labels: Tensor, train: Tensor, hidden: int, steps: int, lr: float,
                weight_decay: float, seed: int) -> Tensor:
    """Logits ``[n]`` of an MLP fitted on the rows ``train`` of ``feats`` ``[n, D]``
    (full batch, AdamW, binary cross-entropy), scored on every row."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(feats.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                            nn.ReLU(), nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    x, t = feats[train], labels[train]
    loss_fn = nn.BCEWithLogitsLoss()
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(net(x)[:, 0], t).backward()
            opt.step()
    with torch.no_grad():
        return net(feats)[:, 0]


# --- which elements break the symmetry -------------------------------------------------
def _per_element(symmetry: Symmetry, g: Element, context: GroupContext, scores: Tensor, labels: Tensor,
                 test: Tensor, n_kept: int, max_elements: int) -> list[dict]:
    """Held-out AUC per element of a finite group of at most ``max_elements`` elements
    (``g``: the ``[n_moved]`` elements that moved the examples, in order)."""
    group = symmetry.group
    order = group.order if group.is_finite else None
    if order is None or order > max_elements:
        return []
    elems = group.elements(context=context)
    n_moved = labels.numel() - n_kept
    same = group.allclose(element_repeat(g, order), element_tile(elems, n_moved)).reshape(n_moved, order)
    which = same.to(torch.int8).argmax(1)[test[n_kept:]]
    kept = scores[:n_kept][test[:n_kept]].sort().values
    moved = scores[n_kept:][test[n_kept:]]
    # each moved example's share of kept examples it outscores (ties: one half); their
    # mean over the examples moved by one element is that element's AUC
    below = torch.searchsorted(kept, moved).double() + torch.searchsorted(kept, moved, right=True)
    share = below / (2 * kept.numel())
    count = torch.bincount(which, minlength=order)
    auc = torch.bincount(which, weights=share, minlength=order) / count.clamp_min(1)
    auc = torch.where(count > 0, auc, torch.full_like(auc, float("nan")))
    names = _element_labels(group, elems, order)
    rows = [{"element": k, "label": names[k], "auc": float(auc[k]), "count": int(count[k])} for k in range(order)]
    return sorted(rows, key=lambda r: -r["auc"] if r["count"] else float("inf"))


def _element_labels(group: Group, elems: Element, order: int) -> list[str]:
    """Names of the elements: ``rot90``, ``flip+rot180`` (rows flipped, then turned), …
    for groups that move the pixel grid, else ``#k`` (the index in ``group.elements()``)."""
    if not group.acts_on_grid:
        return [f"#{k}" for k in range(order)]
    turns, flips = group.grid_moves(elems)
    return [("flip+" if bool(f) else "") + f"rot{90 * int(q) % 360}"
            for q, f in zip(turns.tolist(), flips.tolist(), strict=True)]
