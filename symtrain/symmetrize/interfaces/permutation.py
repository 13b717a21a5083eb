"""S_n interface for graphs and sets (Kim et al. 2023, learned probabilistic
symmetrization).

A GIN with a virtual node maps node features plus uniform noise to one score per node.
The hard permutation sorts the nodes by decreasing score (argsort); the soft one is
SoftSort (``−|s_j − sort(s)_r| / τ``) followed by log-Sinkhorn iterations. The
element is the *inverse* of the sorting permutation, so ``g⁻¹·x`` is the input sorted
by score and ``g(h·x) = h∘g(x)``. The
wrapper uses the straight-through combination of the two. An entropy penalty on the
rows and columns of the soft matrix keeps it near a permutation (auxiliary loss).

Conventions: permutations are ``[B, n]`` long, node ``j`` goes to position ``p[j]``;
the soft matrix follows ``P[p[j], j] = 1`` (rows: positions, columns: nodes). Padded
nodes (``mask`` False) stay in place; their rows/columns of the soft matrix are the
identity.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...actions.registry import create_action
from ...domains import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Count, Real, check_args
from ...errors import ShapeError, SymmetryError
from ...groups.base import GroupContext
from ...groups.permutation import invert_permutation, permutations_from_scores
from ...tree import reference_tensor
from .base import Interface, RelaxedElement, node_view
from .registry import register_interface

_NEG = -1e9


def soft_sort_logits(scores: Tensor, tau: float, mask: Tensor | None = None) -> Tensor:
    """SoftSort logits ``[B, n, n]`` (rows: positions, columns: nodes) for ``scores``
    ``[B, n]``: row of the r-th real position is ``−|s_j − s_(r)| / τ`` with ``s_(r)`` the
    r-th largest real score; masked entries are ``-1e9``, padded rows the identity."""
    b, n = scores.shape
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    key = torch.where(mask, -scores, torch.full_like(scores, float("inf")))
    ranked = scores.gather(1, torch.argsort(key, dim=1, stable=True))  # [B, n], by rank
    rank_of_pos = (mask.long().cumsum(1) - 1).clamp_min(0)            # real position -> rank
    row_scores = ranked.gather(1, rank_of_pos)                          # [B, n] per position
    logits = -(scores[:, None, :] - row_scores[:, :, None]).abs() / tau
    valid = mask[:, :, None] & mask[:, None, :]
    eye = torch.eye(n, dtype=torch.bool, device=scores.device)[None] & ~mask[:, :, None]
    fill = torch.where(eye, torch.zeros_like(logits), torch.full_like(logits, _NEG))
    return torch.where(valid, logits, fill)


def log_sinkhorn(logits: Tensor, iterations: int = 20) -> Tensor:
    """Doubly-stochastic matrix ``exp(Sinkhorn(logits))`` from ``[B, n, n]`` logits,
    normalising rows then columns in log space ``iterations`` times."""
    for _ in range(iterations):
        logits = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        logits = logits - torch.logsumexp(logits, dim=-2, keepdim=True)
    return logits.exp()


def permutation_entropy(soft: Tensor, mask: Tensor | None = None, eps: float = 1e-12) -> Tensor:
    """Mean entropy of the rows plus mean entropy of the columns of ``soft`` ``[B, n, n]``
    (each renormalised), over real nodes; 0 for an exact permutation matrix.

    Entries are clamped to ``eps``: ``x log x`` has an infinite slope at 0, and padded
    rows of the soft matrix are exactly 0 off the diagonal (an unclamped 0 gives NaN
    gradients even where the mask then zeroes the term)."""
    p = soft.clamp_min(eps)
    rows = p / p.sum(-1, keepdim=True).clamp_min(eps)
    cols = p / p.sum(-2, keepdim=True).clamp_min(eps)
    h_rows = -torch.special.xlogy(rows, rows).sum(-1)
    h_cols = -torch.special.xlogy(cols, cols).sum(-2)
    if mask is None:
        return (h_rows.mean(-1) + h_cols.mean(-1)).mean()
    w = mask.to(soft.dtype)
    count = w.sum(-1).clamp_min(1)
    return (((h_rows + h_cols) * w).sum(-1) / count).mean()


@register_interface("permutation")
class PermutationInterface(Interface):
    """Equivariant S_n interface: GIN (dense, torch-geometric ``DenseGINConv``) with a
    virtual node joined to every real node; one score per node.

    Input data: whatever the symmetry's input holds per node (``Nodes``, ``Points``,
    ``Vectors``, ``Adjacency``, ``Mask``, PyG ``Graph``), concatenated to ``in_features``
    channels; the adjacency (if any) is the GIN's graph, otherwise only the virtual node
    connects the nodes (a set).

    Noise: ``[B, N, noise_dim + 1]``, acted on by :class:`~symtrain.actions.Nodes`: the
    first ``noise_dim`` channels ~ U(0, noise_scale) are fed to the GIN, the last
    ~ U(0, tie_break) is added to the scores to break ties.

    Args:
        in_features: node feature channels of the input (0 for none).
        hidden: GIN width; layers: GIN depth.
        tau: SoftSort temperature; sinkhorn_iterations: log-Sinkhorn iterations.
        entropy_weight: weight of the entropy penalty (the auxiliary loss).
        max_nodes: largest graph accepted (``None``: no limit).
        normalize: divide the scores by their L2 norm over real nodes (as in LPS).
        dropout: dropout after the hidden activation of each GIN layer's MLP, in training
            mode only (LPS ``interface_dropout``: 0.1 for PATTERN and Peptides, 0 for
            PCQM-Contact); 0 adds no layer.
    """

    @check_args(in_features=Count(0), hidden=POSITIVE_INT, layers=POSITIVE_INT, noise_dim=POSITIVE_INT, tau=POSITIVE,
                sinkhorn_iterations=POSITIVE_INT, entropy_weight=NON_NEGATIVE, tie_break=NON_NEGATIVE,
                max_nodes=Count(1, optional=True), dropout=Real(0, 1, high_open=True))
    def __init__(self, in_features: int, hidden: int = 64, layers: int = 3, noise_dim: int = 1,
                 tau: float = 0.1, sinkhorn_iterations: int = 20, entropy_weight: float = 0.1,
                 tie_break: float = 1e-6, max_nodes: int | None = None, normalize: bool = True,
                 dropout: float = 0.0):
        from torch_geometric.nn import DenseGINConv

        super().__init__("S_n")
        if in_features < 0 or noise_dim < 0 or layers < 1 or hidden < 1:
            raise ValueError("in_features and noise_dim must be >= 0, layers and hidden >= 1")
        if tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.in_features, self.noise_dim = in_features, noise_dim
        self.tau, self.sinkhorn_iterations = tau, sinkhorn_iterations
        self.entropy_weight, self.tie_break = entropy_weight, tie_break
        self.max_nodes, self.normalize, self.dropout = max_nodes, normalize, dropout
        self.noise_action = create_action("nodes")
        width = max(in_features + noise_dim, 1)
        self.virtual_node = nn.Parameter(torch.randn(width) * 0.1)
        dims = [width] + [hidden] * layers
        self.convs = nn.ModuleList(
            DenseGINConv(nn.Sequential(nn.Linear(a, hidden), nn.ReLU(),
                                       *([nn.Dropout(dropout)] if dropout > 0 else []), nn.Linear(hidden, b)),
                         train_eps=True) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.head = nn.Linear(hidden, 1)

    @classmethod
    def supports(cls, group):
        return len(group.factors) == 1 and group.permutes_nodes

    @classmethod
    def infer_args(cls, symmetry, example):
        view = node_view(symmetry.input, example, symmetry.context(example))
        return {"in_features": 0 if view.features is None else view.features.shape[-1]}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, noise_dim={self.noise_dim}, tau={self.tau}, "
                f"sinkhorn_iterations={self.sinkhorn_iterations}, "
                f"entropy_weight={self.entropy_weight}, max_nodes={self.max_nodes}, dropout={self.dropout}")

    def sample_noise(self, x: Any, context: GroupContext, scale: float,
                     generator: torch.Generator | None = None) -> Tensor:
        ref = reference_tensor(x)
        b, n = context.batch_size, context.num_nodes
        noise = torch.rand(b, n, self.noise_dim + 1, generator=generator, device=ref.device,
                           dtype=ref.dtype if ref.is_floating_point() else None)
        scales = noise.new_full((self.noise_dim + 1,), float(scale))
        scales[-1] = self.tie_break
        return noise * scales

    def scores(self, x: Any, noise: Tensor, context: GroupContext | None = None) -> tuple[Tensor, Tensor | None]:
        """Per-node scores ``[B, N]`` (before tie-breaking) and the node mask."""
        view = node_view(self._action(), x, context)
        feats = view.features
        ref = next(t for t in (feats, view.adjacency, view.points, noise) if t is not None)
        b, n = ref.shape[0], ref.shape[1]
        if self.max_nodes is not None and n > self.max_nodes:
            raise ShapeError(f"the input has {n} nodes but this PermutationInterface was built for "
                             f"at most max_nodes={self.max_nodes}; rebuild it with a larger max_nodes")
        got = 0 if feats is None else feats.shape[-1]
        if got != self.in_features:
            raise ShapeError(f"PermutationInterface(in_features={self.in_features}) got {got} "
                             "per-node input channels; set in_features to match the data")
        if noise.shape[:2] != (b, n) or noise.shape[-1] != self.noise_dim + 1:
            raise ShapeError(f"noise must have shape {(b, n, self.noise_dim + 1)}, got {tuple(noise.shape)}")
        dtype = self.virtual_node.dtype
        parts = ([feats.to(dtype)] if feats is not None else []) + [noise[..., :-1].to(dtype)]
        h = torch.cat(parts, -1) if sum(p.shape[-1] for p in parts) else noise.new_zeros(b, n, 1)
        mask = view.mask
        if mask is not None:
            h = h * mask[..., None].to(h.dtype)
        adj = view.adjacency.to(dtype) if view.adjacency is not None else h.new_zeros(b, n, n)
        # Virtual node 0, joined to every real node.
        real = mask.to(dtype) if mask is not None else h.new_ones(b, n)
        h = torch.cat([self.virtual_node.expand(b, 1, -1), h], 1)
        adj = torch.cat([real[:, None, :], adj], 1)
        adj = torch.cat([torch.cat([h.new_zeros(b, 1, 1), real[:, :, None]], 1), adj], 2)
        full_mask = None if mask is None else torch.cat([mask.new_ones(b, 1), mask], 1)
        for i, conv in enumerate(self.convs):
            h = conv(h, adj, mask=full_mask)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        s = self.head(h)[:, 1:, 0]
        if mask is not None:
            s = s * mask.to(s.dtype)
        if self.normalize:
            s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-6)
        return s, mask

    def relaxed(self, x: Any, noise: Tensor, context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        s, mask = self.scores(x, noise, context)
        s = s + noise[..., -1].to(s.dtype)
        perm, matrix, loss = relaxed_permutation(s, mask, self.tau, self.sinkhorn_iterations,
                                                 self.entropy_weight, soft)
        return RelaxedElement(perm, (matrix,), loss)


def relaxed_permutation(scores: Tensor, mask: Tensor | None, tau: float, iterations: int,
                        entropy_weight: float, soft: bool) -> tuple[Tensor, Tensor | None, Tensor]:
    """From per-node scores ``[B, n]``: the hard element ``[B, n]``, its soft matrix
    ``[B, n, n]`` (or ``None`` if not ``soft``) and the weighted entropy penalty.

    The sorting permutation puts the nodes in decreasing order of score; the element is
    its inverse, so that ``g(h·x) = h∘g(x)`` and ``g⁻¹·x`` is the input sorted by score."""
    if bool(torch.isnan(scores).any()):
        raise SymmetryError("the permutation interface produced NaN scores (NaN in the input "
                            "or diverged interface weights); check the data and lower the "
                            "learning rate")
    perm = invert_permutation(permutations_from_scores(scores.detach(), mask))
    if not soft:
        return perm, None, scores.new_zeros(())
    sorting = log_sinkhorn(soft_sort_logits(scores, tau, mask), iterations)
    matrix = sorting.transpose(-1, -2)
    return perm, matrix, entropy_weight * permutation_entropy(matrix, mask)
