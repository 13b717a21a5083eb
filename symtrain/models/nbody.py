"""A plain transformer over the particles of an n-body system."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register_model


@register_model("nbody_transformer")
class NBodyTransformer(nn.Module):
    """Transformer encoder over particles: token ``i`` embeds ``(x_i, v_i, q_i)``; the
    output is ``x_i + Δ_i`` with ``Δ_i`` read from token ``i``.

    Permutation-equivariant (no positional encoding) but neither rotation- nor
    translation-equivariant: it sees raw coordinates.

    Args:
        dim: token width; layers: encoder layers; heads: attention heads;
        ff: feed-forward width (default ``2·dim``); dropout.
        space_dim: ``d``; charge_dim: channels of the per-particle scalars.

    ``forward(pos (B, n, d), vel (B, n, d), charge (B, n, c)) -> (B, n, d)``.
    """

    def __init__(self, dim: int = 64, layers: int = 8, heads: int = 4, ff: int | None = None,
                 dropout: float = 0.0, space_dim: int = 3, charge_dim: int = 1):
        super().__init__()
        self.embed = nn.Linear(2 * space_dim + charge_dim, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ff or 2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, space_dim)

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor) -> Tensor:
        h = self.embed(torch.cat([pos, vel, charge.to(pos.dtype)], -1))
        return pos + self.head(self.norm(self.encoder(h)))
