"""PyG's :class:`~torch_geometric.nn.models.SchNet` (Schütt et al. 2017) on dense
molecule batches, the E(3)-invariant reference for MD17 and QM9: energy, and forces as
``−∂E/∂x`` by autograd.

PyG builds SchNet's radius graph with ``radius_graph``, which needs ``pyg-lib`` or
``torch-cluster`` (compiled extensions, not installed here and not on PyPI as wheels
for this torch). Molecules are small (≤ 29 atoms), so the graph is built densely in
torch instead (:func:`dense_radius_graph`: every ordered pair of real atoms of a
molecule closer than ``cutoff``, all of them, no neighbour cap) and handed to PyG's
``SchNet`` through its ``interaction_graph`` argument; the rest is PyG's own code.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .molecule_transformer import gradient_forces
from .registry import register_model

FORCES = ("gradient", "none")


def dense_radius_graph(pos: Tensor, z: Tensor, cutoff: float) -> Tensor:
    """Edges between the real atoms (``z > 0``) of each molecule of ``pos (B, N, 3)``
    closer than ``cutoff``: ``edge_index [2, E]`` (source, target) into the real atoms
    taken in order (``pos[z > 0]``). Which pairs are edges does not need a gradient; the
    distances are taken from the positions SchNet is given."""
    n = pos.shape[1]
    real = z > 0
    with torch.no_grad():
        dist2 = (pos[:, :, None, :] - pos[:, None, :, :]).pow(2).sum(-1)
        keep = real[:, :, None] & real[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=pos.device)
        keep &= dist2 < cutoff * cutoff
        mol, i, j = keep.nonzero(as_tuple=True)
        index = real.flatten().long().cumsum(0) - 1            # dense slot -> real atom
        return torch.stack([index[mol * n + j], index[mol * n + i]])


@register_model("molecule_schnet")
class MoleculeSchNet(nn.Module):
    """``torch_geometric.nn.models.SchNet`` over dense molecules: energy the sum of its
    per-atom outputs over the real atoms (``z > 0``; 0 is padding), forces ``−∂E/∂x``
    (``forces="gradient"``) or none (``forces="none"``: the energy alone, QM9).

    Exactly invariant to rotations, reflections, translations and atom permutations (it
    sees interatomic distances only); the forces are equivariant.

    Args: ``hidden`` (SchNet's hidden_channels), ``filters`` (num_filters),
    ``interactions`` (num_interactions), ``gaussians`` (num_gaussians), ``cutoff`` (Å).

    ``forward(pos (B, N, 3), z (B, N) long) -> (energy (B,), forces (B, N, 3))``.
    """

    def __init__(self, hidden: int = 128, filters: int = 128, interactions: int = 6,
                 gaussians: int = 50, cutoff: float = 5.0, forces: str = "gradient"):
        super().__init__()
        from torch_geometric.nn.models import SchNet

        if forces not in FORCES:
            raise ValueError(f"forces must be one of {', '.join(FORCES)}, got {forces!r}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff!r}")
        self.forces, self.cutoff = forces, float(cutoff)
        self._edges: Tensor | None = None
        self.schnet = SchNet(hidden_channels=hidden, num_filters=filters, num_interactions=interactions,
                             num_gaussians=gaussians, cutoff=cutoff, interaction_graph=self._interaction_graph)

    def _interaction_graph(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        # SchNet calls this with the real atoms' positions; the pairs were chosen from the
        # dense batch just before (see _energy), the distances are taken here.
        edges, self._edges = self._edges, None
        if edges is None:
            raise RuntimeError("MoleculeSchNet's interaction graph is built in forward()")
        return edges, (pos[edges[0]] - pos[edges[1]]).norm(dim=-1)

    def _energy(self, pos: Tensor, z: Tensor) -> Tensor:
        b, n, _ = pos.shape
        z = z.long()
        if z.numel() and (int(z.min()) < 0 or int(z.max()) > 99):
            raise ValueError(f"atomic numbers must lie in [0, 99] (0 = padding), got "
                             f"[{int(z.min())}, {int(z.max())}]")
        real = z > 0
        if not bool(real.any(1).all()):
            raise ValueError("every molecule needs at least one atom (z > 0)")
        self._edges = dense_radius_graph(pos, z, self.cutoff)
        batch = torch.arange(b, device=pos.device)[:, None].expand(b, n)[real]
        # Padded atoms (z = 0) are left out: they would add SchNet's output bias once each.
        return self.schnet(z[real], pos[real], batch).reshape(b)

    def forward(self, pos: Tensor, z: Tensor) -> tuple[Tensor, Tensor] | Tensor:
        if self.forces == "none":
            return self._energy(pos, z)
        return gradient_forces(lambda p: self._energy(p, z), pos, self.training)
