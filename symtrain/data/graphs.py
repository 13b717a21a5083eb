"""Synthetic graph data generated locally (nothing is downloaded), seeded by a
``torch.Generator``.

- :func:`csl_graphs`: circular skip-link graphs (Murphy et al., ICML 2019): a 41-cycle
  plus chords ``i — i+r`` for a skip length ``r``, one class per ``r`` in
  {2, 3, 4, 5, 6, 9, 11, 12, 13, 16}. Every graph is 4-regular, so the 1-WL test (and
  any message-passing GNN) gives all of them the same colours.
- :func:`exp_pairs`: EXP-style pairs (after Abboud et al., IJCAI 2021): two
  non-isomorphic graphs that 1-WL cannot tell apart, with different labels. Both are
  2-lifts (double covers) of one random connected base graph ``H``: label 0 is the
  trivial lift ``H ⊔ H`` (disconnected), label 1 a lift with a sign flip on a cycle
  (connected). A covering map preserves 1-WL colours, so the two graphs have identical
  colour histograms at every refinement step.
- :func:`sbm_pattern`: PATTERN-style node classification (Dwivedi et al., 2020):
  stochastic-block-model graphs with a planted pattern; a node's label says whether it
  belongs to the pattern.

Each returns a :class:`DenseGraphs` (dense ``[B, N, N]`` adjacency, node features, node
mask and labels) with :meth:`DenseGraphs.to_pyg` for the PyG ``Data`` form. Node order
is randomly permuted per graph, so it carries no label information.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torch import Tensor

from ..actions.base import permute_axis
from ..groups.permutation import permutations_from_scores

CSL_SKIPS: tuple[int, ...] = (2, 3, 4, 5, 6, 9, 11, 12, 13, 16)


@dataclass
class DenseGraphs:
    """A batch of graphs in dense form.

    Attributes:
        adjacency: ``[B, N, N]`` float 0/1, symmetric, zero diagonal and padding.
        features: ``[B, N, F]`` float node features (all ones when the graphs have none).
        mask: ``[B, N]`` bool, True for real nodes, which come first (only
            :func:`sbm_pattern` has padding).
        labels: ``[B]`` long graph labels, or ``[B, N]`` long node labels (``-1`` on
            padding).
    """

    adjacency: Tensor
    features: Tensor
    mask: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.adjacency.shape[0]

    def __getitem__(self, index) -> "DenseGraphs":
        """The graphs at ``index`` (an int, slice or index tensor), as a ``DenseGraphs``."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return DenseGraphs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def to(self, device) -> "DenseGraphs":
        return DenseGraphs(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def to_pyg(self) -> list:
        """A list of PyG ``Data`` (``x``, ``edge_index``, ``y``; padding dropped). ``y``
        is ``[1]`` for graph labels and ``[n]`` for node labels."""
        from torch_geometric.data import Data

        out = []
        node_labels = self.labels.dim() == 2
        for adj, x, mask, y in zip(self.adjacency, self.features, self.mask, self.labels, strict=False):
            keep = mask.nonzero().flatten()
            sub = adj[keep][:, keep]
            out.append(Data(x=x[keep], edge_index=sub.nonzero().t().contiguous(),
                            y=y[keep] if node_labels else y.reshape(1)))
        return out


def random_node_order(adjacency: Tensor, *others: Tensor, mask: Tensor | None = None,
                      generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
    """Relabel the nodes of every graph by an independent uniform permutation (real
    nodes among real positions if ``mask`` is given); ``others`` are ``[B, N, ...]``
    node tensors moved the same way. Returns ``(adjacency, *others)``."""
    b, n = adjacency.shape[:2]
    scores = torch.rand(b, n, generator=generator, device=adjacency.device)
    p = permutations_from_scores(scores, mask)
    adjacency = permute_axis(permute_axis(adjacency, p, 1), p, 2)
    return (adjacency, *(permute_axis(t, p, 1) for t in others))


def _symmetric(upper: Tensor) -> Tensor:
    upper = upper.triu(1)
    return upper + upper.transpose(-1, -2)


def circulant_adjacency(n: int, offsets: Sequence[int], device=None) -> Tensor:
    """``[n, n]`` adjacency with ``i — i+r (mod n)`` for every ``r`` in ``offsets``."""
    i = torch.arange(n, device=device)
    adj = torch.zeros(n, n, device=device)
    for r in offsets:
        adj[i, (i + r) % n] = 1.0
        adj[(i + r) % n, i] = 1.0
    return adj


def csl_graphs(per_class: int = 15, *, nodes: int = 41, skips: Sequence[int] = CSL_SKIPS,
               generator: torch.Generator | None = None, device=None) -> DenseGraphs:
    """Circular skip-link graphs: ``per_class`` randomly relabelled copies of
    ``C_nodes`` + chords of skip ``r``, for each ``r`` in ``skips`` (class = its index).

    Murphy et al. use 15 graphs per class (150 in all) with ``nodes=41``.
    """
    if any(not 1 < r < nodes - 1 for r in skips) or len(set(skips)) != len(skips):
        raise ValueError(f"skip lengths must be distinct and in 2..{nodes - 2}, got {list(skips)}")
    base = torch.stack([circulant_adjacency(nodes, (1, r), device) for r in skips])
    labels = torch.arange(len(skips), device=device).repeat_interleave(per_class)
    adjacency = base[labels]
    adjacency, = random_node_order(adjacency, generator=generator)
    b = labels.numel()
    features = torch.ones(b, nodes, 1, device=device)
    mask = torch.ones(b, nodes, dtype=torch.bool, device=device)
    return DenseGraphs(adjacency, features, mask, labels)


def exp_pairs(num_pairs: int = 100, *, base_nodes: int = 8, edge_prob: float = 0.25,
              cycle: int | None = None, generator: torch.Generator | None = None,
              device=None) -> DenseGraphs:
    """EXP-style pairs of 1-WL-equivalent, non-isomorphic graphs with ``2·base_nodes``
    nodes each; graph ``2i`` (label 0) and ``2i+1`` (label 1) form pair ``i``.

    For each pair a connected base graph ``H`` is drawn: a random recursive tree, extra
    edges with probability ``edge_prob``, and one forced chord (so ``H`` has a cycle).
    Label 0 is ``H ⊔ H``; label 1 is the 2-lift in which the forced chord, and each
    other chord with probability 1/2, crosses between the two copies (tree edges never
    do), which is connected. Both are double covers of ``H``, hence 1-WL-equivalent.

    With ``cycle=c``, ``H`` is instead unicyclic: a ``c``-cycle with the other base nodes
    hung on it as random trees (``edge_prob`` unused), and label 1 twists one cycle
    edge. The two graphs then differ only in having two ``c``-cycles or one
    ``2c``-cycle: no count of subgraphs smaller than a ``c``-cycle separates them, which
    defeats models that merely average over random node orders.
    """
    m = base_nodes
    if m < 3:
        raise ValueError(f"base_nodes must be at least 3 (a cycle), got {m}")
    if cycle is not None:
        if not 3 <= cycle <= m:
            raise ValueError(f"cycle must be in 3..base_nodes={m}, got {cycle}")
        return _unicyclic_pairs(num_pairs, m, cycle, generator, device)
    kw = dict(generator=generator, device=device)
    ar = torch.arange(m, device=device)
    # random recursive tree: node i > 0 hangs from a uniform node < i
    parent = (torch.rand(num_pairs, m, **kw) * ar).floor().long()
    tree = torch.zeros(num_pairs, m, m, device=device)
    rows = torch.arange(num_pairs, device=device)[:, None].expand(-1, m - 1)
    tree[rows, ar[1:].expand(num_pairs, -1), parent[:, 1:]] = 1.0
    tree = _symmetric(tree + tree.transpose(-1, -2))
    # a forced chord from the leaf m-1 to a node other than its parent
    last_parent = parent[:, -1]
    other = (last_parent + 1 + (torch.rand(num_pairs, **kw) * (m - 2)).floor().long()) % (m - 1)
    forced = torch.zeros(num_pairs, m, m, device=device)
    forced[torch.arange(num_pairs, device=device), m - 1, other] = 1.0
    forced = _symmetric(forced + forced.transpose(-1, -2))
    extra = _symmetric((torch.rand(num_pairs, m, m, **kw) < edge_prob).float())
    chords = ((extra + forced) > 0).float() * (1 - tree)
    cross = _symmetric((torch.rand(num_pairs, m, m, **kw) < 0.5).float()) * chords
    cross = ((cross + forced) > 0).float()
    return _lift_pairs(tree + chords, cross, generator)


def _unicyclic_pairs(num_pairs: int, m: int, c: int, generator, device) -> DenseGraphs:
    ar = torch.arange(m, device=device)
    parent = (torch.rand(num_pairs, m, generator=generator, device=device) * ar).floor().long()
    parent[:, :c] = (ar[:c] - 1) % c  # the cycle 0-1-…-(c-1)-0, then trees hung on it
    base = torch.zeros(num_pairs, m, m, device=device)
    rows = torch.arange(num_pairs, device=device)[:, None].expand(-1, m)
    base[rows, ar.expand(num_pairs, -1), parent] = 1.0
    base = ((base + base.transpose(-1, -2)) > 0).float()
    cross = torch.zeros_like(base)
    cross[:, 0, c - 1] = cross[:, c - 1, 0] = 1.0
    return _lift_pairs(base, cross, generator)


def _lift_pairs(base: Tensor, cross: Tensor, generator) -> DenseGraphs:
    """Trivial 2-lift (label 0) and the 2-lift twisting the edges in ``cross`` (label 1)
    of each base graph ``[P, m, m]``, interleaved and randomly relabelled."""
    p, m = base.shape[:2]
    same, zero = base - cross, torch.zeros_like(base)
    trivial = torch.cat([torch.cat([base, zero], 2), torch.cat([zero, base], 2)], 1)
    twisted = torch.cat([torch.cat([same, cross], 2), torch.cat([cross, same], 2)], 1)
    adjacency = torch.stack([trivial, twisted], 1).flatten(0, 1)
    labels = torch.tensor([0, 1], device=base.device).repeat(p)
    adjacency, = random_node_order(adjacency, generator=generator)
    features = torch.ones(2 * p, 2 * m, 1, device=base.device)
    mask = torch.ones(2 * p, 2 * m, dtype=torch.bool, device=base.device)
    return DenseGraphs(adjacency, features, mask, labels)


def sbm_pattern(num_graphs: int = 100, *, communities: int = 5,
                community_size: tuple[int, int] = (5, 35), p: float = 0.5, q: float = 0.35,
                pattern_size: int = 20, p_pattern: float = 0.5, q_pattern: float = 0.5,
                vocabulary: int = 3, generator: torch.Generator | None = None,
                device=None) -> DenseGraphs:
    """PATTERN-style node classification on stochastic-block-model graphs.

    Each graph has ``communities`` blocks of uniform random sizes in ``community_size``
    (inclusive), edge probability ``p`` inside a block and ``q`` between blocks, plus a
    planted pattern of ``pattern_size`` nodes (edges inside with ``p_pattern``, to the
    rest with ``q_pattern``). Node features are one-hot of a uniform token in
    ``range(vocabulary)``; node labels are 1 on the pattern, 0 elsewhere, -1 on padding.
    The defaults are those of Dwivedi et al.'s PATTERN (graphs of 45–195 nodes); use
    smaller blocks for quick CPU runs.
    """
    lo, hi = community_size
    if not 1 <= lo <= hi:
        raise ValueError(f"community_size must be (min, max) with 1 <= min <= max, got {community_size}")
    kw = dict(generator=generator, device=device)
    n_max = communities * hi + pattern_size
    sizes = torch.randint(lo, hi + 1, (num_graphs, communities), **kw)
    # block of each slot: community c fills slots [start_c, start_c + size_c), then the pattern
    slot = torch.arange(n_max, device=device)
    ends = sizes.cumsum(1)
    block = (slot[None, :, None] >= ends[:, None, :]).sum(-1)  # [B, N]: index of the community
    total = ends[:, -1:]
    is_pattern = (slot[None] >= total) & (slot[None] < total + pattern_size)
    mask = slot[None] < total + pattern_size
    block = torch.where(is_pattern, torch.full_like(block, communities), block)
    same_block = block[:, :, None] == block[:, None, :]
    pat_i, pat_j = is_pattern[:, :, None], is_pattern[:, None, :]
    prob = torch.where(same_block, p, q)
    prob = torch.where(pat_i & pat_j, p_pattern, torch.where(pat_i ^ pat_j, q_pattern, prob))
    pair = mask[:, :, None] & mask[:, None, :]
    adjacency = _symmetric(((torch.rand(num_graphs, n_max, n_max, **kw) < prob) & pair).float())
    tokens = torch.randint(0, vocabulary, (num_graphs, n_max), **kw)
    features = torch.nn.functional.one_hot(tokens, vocabulary).float() * mask[..., None]
    labels = torch.where(mask, is_pattern.long(), torch.full_like(tokens, -1))
    adjacency, features, labels, mask = random_node_order(adjacency, features, labels, mask,
                                                          mask=mask, generator=generator)
    return DenseGraphs(adjacency, features, mask, labels)


def graph_classification_task(graphs: DenseGraphs, parts: Sequence[Tensor]):
    """A :class:`~symtrain.data.task.Task` classifying whole graphs (adjacency → label),
    group S_n, with the ``[train, val, test]`` graph indices ``parts``."""
    from ..symmetry import Symmetry
    from .task import Task, TensorData, accuracy_metrics, graph_cross_entropy

    make = [TensorData(graphs.adjacency[i], graphs.labels[i]) for i in parts]
    sym = Symmetry("S_n", input="adjacency", output="trivial")
    n = graphs.adjacency.shape[1]
    return Task(*make, sym, graph_cross_entropy, accuracy_metrics, "accuracy",
                {"num_nodes": n, "max_nodes": n, "num_classes": graphs.num_classes, "in_features": 0})
