"""A plain transformer over the atoms of a molecule (MD17): energy and forces."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register_model

FORCES = ("direct", "gradient", "none")


def gradient_forces(energy_fn, pos: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
    """``energy_fn(pos)`` (``[B]``) and the conservative forces ``−∂E/∂pos`` (``pos``'s
    shape) by autograd, under ``torch.enable_grad`` so it also works in evaluation and
    under ``torch.no_grad``; ``create_graph`` keeps the graph for training on forces."""
    with torch.enable_grad():
        leaf = pos if pos.requires_grad else pos.detach().requires_grad_(True)
        # The model gets a view, not the leaf itself: torch's module tracker (under
        # FlopCounterMode, which counts a step's FLOPs) hooks module inputs, and a hook on
        # the leaf that autograd.grad differentiates by is unsupported.
        energy = energy_fn(leaf.view_as(leaf))
        (grad,) = torch.autograd.grad(energy.sum(), leaf, create_graph=create_graph)
    return energy, -grad


@register_model("molecule_transformer")
class MoleculeTransformer(nn.Module):
    """Transformer encoder over atoms: token ``i`` is a linear map of the position
    ``x_i`` plus a learned embedding of the atomic number ``z_i``. The energy is the sum
    of per-atom scalars read from the tokens; the forces are either read from each
    token as a 3-vector (``forces="direct"``) or ``−∂E/∂x`` by autograd
    (``forces="gradient"``, conservative; computed under ``torch.enable_grad`` so it
    also works in evaluation); ``forces="none"`` returns the energy alone (QM9).

    Atomic number 0 marks padding (molecules of different sizes in one batch, QM9):
    padded atoms are masked out of attention and contribute no energy.

    Permutation-equivariant (no positional encoding) but neither rotation- nor
    translation-equivariant: it sees raw coordinates; the symmetrization wrappers (or
    REMUL's loss) supply E(3).

    Args:
        dim: token width; layers: encoder layers; heads: attention heads;
        ff: feed-forward width (default ``2·dim``); dropout;
        max_z: largest atomic number embedded; forces: ``"direct"`` or ``"gradient"``.

    ``forward(pos (B, N, 3), z (B, N) long) -> (energy (B,), forces (B, N, 3))``, or
    ``energy (B,)`` with ``forces="none"``.
    """

    def __init__(self, dim: int = 64, layers: int = 4, heads: int = 4, ff: int | None = None,
                 dropout: float = 0.0, max_z: int = 100, forces: str = "direct", space_dim: int = 3):
        super().__init__()
        if forces not in FORCES:
            raise ValueError(f"forces must be one of {', '.join(FORCES)}, got {forces!r}")
        self.forces, self.max_z = forces, max_z
        self.embed_pos = nn.Linear(space_dim, dim)
        self.embed_z = nn.Embedding(max_z + 1, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff or 2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.energy_head = nn.Linear(dim, 1)
        self.force_head = nn.Linear(dim, space_dim) if forces == "direct" else None

    def _tokens(self, pos: Tensor, z: Tensor) -> Tensor:
        z = z.long()
        if z.numel() and (int(z.min()) < 0 or int(z.max()) > self.max_z):
            raise ValueError(f"atomic numbers must lie in [0, {self.max_z}] (max_z), got "
                             f"[{int(z.min())}, {int(z.max())}]")
        pad = z == 0
        h = self.embed_pos(pos) + self.embed_z(z).to(pos.dtype)
        return self.norm(self.encoder(h, src_key_padding_mask=pad if bool(pad.any()) else None))

    def _energy(self, h: Tensor, z: Tensor) -> Tensor:
        return (self.energy_head(h).squeeze(-1) * (z != 0).to(h.dtype)).sum(1)

    def forward(self, pos: Tensor, z: Tensor) -> tuple[Tensor, Tensor] | Tensor:
        if self.forces == "none":
            return self._energy(self._tokens(pos, z), z)
        if self.forces == "direct":
            h = self._tokens(pos, z)
            return self._energy(h, z), self.force_head(h) * (z != 0).to(h.dtype)[..., None]
        return gradient_forces(lambda p: self._energy(self._tokens(p, z), z), pos, self.training)
