"""S_n × O(d) (or S_n × E(d), SO(d), SE(d)) interface for n-body style point sets: one
Vector-Neuron encoder gives both the rotation (Gram–Schmidt of pooled vectors, as in
:class:`~.rotation.RotationInterface`) and one invariant score per node (projections of
the node's vector features onto that frame), sorted into the permutation as in
:class:`~.permutation.PermutationInterface`.

Noise: Gaussian vectors, permuted and rotated with the input, either an extra channel
(``noise_on="channel"``) or added to the positions and velocities themselves with the
kNN on the noisy vectors (``noise_on="vectors"``, as in LPS; see
:mod:`~.rotation`). Ties between scores are broken by ``tie_break·Σ|ε_i|``, which moves
with the nodes, so a transformed noise draw gives exactly the transformed element. With
``normalize`` the scores are divided by their L2 norm over the (real) nodes before
SoftSort, as in the LPS code (the hard permutation is unchanged; the soft one, and so
the straight-through gradient, is not).

The LPS paper's n-body setting: ``noise_on="vectors"``, ``normalize=True``,
``dropout=0.08``, ``tau=0.1``, ``knn=4``, noise scale 1; its canonicalization is the
same interface with noise scale 0 and one sample.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ...domains import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Count, Real, check_args
from ...errors import ShapeError, SymmetryError
from ...groups.base import Group, GroupContext
from .base import RelaxedElement
from .permutation import relaxed_permutation
from .registry import register_interface
from .rotation import RotationInterface, _is_rotation_group, noise_norm


@register_interface("product")
class ProductInterface(RotationInterface):
    """Interface for ``S_n × G`` with G one of O(d), SO(d), E(d), SE(d).

    Args:
        group: e.g. ``"S_n x O3"`` or ``"S_n x E3"``.
        in_vectors, in_scalars, hidden, layers, knn, noise_on, dropout: as
            :class:`RotationInterface`.
        tau, sinkhorn_iterations, entropy_weight, max_nodes: as
            :class:`~.permutation.PermutationInterface`.
        normalize: L2-normalise the per-node scores over the nodes before SoftSort.
    """

    @check_args(in_vectors=POSITIVE_INT, in_scalars=Count(0), hidden=POSITIVE_INT, layers=POSITIVE_INT,
                knn=POSITIVE_INT,
                tau=POSITIVE, sinkhorn_iterations=POSITIVE_INT, entropy_weight=NON_NEGATIVE, tie_break=NON_NEGATIVE,
                max_nodes=Count(1, optional=True), dropout=Real(0, 1, high_open=True))
    def __init__(self, group: str | Group = "S_n x O3", in_vectors: int = 1, in_scalars: int = 0,
                 hidden: int = 32, layers: int = 2, knn: int = 4, tau: float = 0.1,
                 sinkhorn_iterations: int = 20, entropy_weight: float = 0.1,
                 tie_break: float = 1e-6, max_nodes: int | None = None, noise_on: str = "channel",
                 normalize: bool = False, dropout: float = 0.0):
        from ...groups.registry import create_group

        full = create_group(group)
        factors = full.factors
        if not self.supports(full):
            raise SymmetryError(f"ProductInterface is for S_n x O(d)/SO(d)/E(d)/SE(d), got {full}; "
                                "use PermutationInterface or RotationInterface for one factor")
        super().__init__(factors[1], in_vectors, in_scalars, hidden, layers, knn, noise_on, dropout)
        self.group = full
        self.tau, self.sinkhorn_iterations = tau, sinkhorn_iterations
        self.entropy_weight, self.tie_break, self.max_nodes = entropy_weight, tie_break, max_nodes
        self.normalize = normalize
        self.score = nn.Sequential(nn.Linear(hidden * self.dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    @classmethod
    def supports(cls, group):
        factors = group.factors
        return len(factors) == 2 and factors[0].permutes_nodes and _is_rotation_group(factors[1])

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, tau={self.tau}, sinkhorn_iterations={self.sinkhorn_iterations}, "
                f"entropy_weight={self.entropy_weight}, max_nodes={self.max_nodes}, "
                f"normalize={self.normalize}")

    def relaxed(self, x: Any, noise: Tensor | tuple[Tensor, ...], context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        n = noise_norm(noise).shape[1]
        if self.max_nodes is not None and n > self.max_nodes:
            raise ShapeError(f"the input has {n} nodes but this ProductInterface was built for at "
                             f"most max_nodes={self.max_nodes}; rebuild it with a larger max_nodes")
        h, rot, mask, centroid = self.encode(x, noise, context)
        invariant = torch.einsum("bnhi,bij->bnhj", h, rot)        # coordinates in the frame
        s = self.score(rearrange(invariant, "b n h d -> b n (h d)"))[..., 0]
        s = s + self.tie_break * noise_norm(noise).to(s.dtype)
        if mask is not None:
            s = s.masked_fill(~mask, 0.0)
        if self.normalize:
            s = s / s.norm(dim=1, keepdim=True).clamp_min(1e-6)
        perm, matrix, loss = relaxed_permutation(s, mask, self.tau, self.sinkhorn_iterations,
                                                 self.entropy_weight, soft)
        return RelaxedElement((perm, self.element(rot, centroid, context)), (matrix, None), loss)
