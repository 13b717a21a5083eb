"""The n-body backbone of the LPS paper (Kim et al. 2023): a transformer over the n²
ordered pairs of particles.

Token ``(i, j)`` of the ``n × n`` grid:

- ``i == j``: particle ``i``'s position ``x_i``, velocity ``v_i`` and charge ``q_i``
  (the pair channels are 0);
- ``i != j``: the charge product ``q_i·q_j`` and the squared distance ``‖x_i − x_j‖²``
  (the particle channels are 0).

The tokens get learnable positional embeddings, one per slot of the grid, so the
backbone is **not** permutation-equivariant: relabelling the particles moves the tokens
to other slots. Positions and velocities enter raw, so it is not rotation- or
translation-equivariant either. S_n × E(3) has to come from symmetrization
(:class:`~symtrain.ProbabilisticSymmetrization` with a
:class:`~symtrain.symmetrize.interfaces.ProductInterface`), as in the paper.

Widths follow the LPS code (``src_synthetic/nbody/transformer.py`` and ``args.py`` of
jw9730/lps): width 64, feed-forward 64 (the feed-forward width equals the width), 4
heads, 8 pre-norm layers, GELU, a final LayerNorm, and a two-layer MLP on the diagonal
tokens. One difference: that code leaves the charge out of the diagonal token (its
diagonal holds positions and velocities; charges enter only through ``q_i·q_j``); here
``charge_on_diagonal=False`` gives that layout.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from .registry import register_model


@register_model("nbody_pair_transformer")
class NBodyPairTransformer(nn.Module):
    """Transformer over pair tokens; predicts positions ``x_i + Δ_i``, with ``Δ_i`` read
    off the diagonal token ``(i, i)``.

    Args:
        num_nodes: particles ``n`` (the positional embeddings cover ``n²`` slots).
        dim: token width; layers: encoder layers; heads: attention heads;
        ff: feed-forward width (default ``dim``, as in the LPS code).
        dropout: dropout on the embedded tokens, in the encoder and in the head.
        space_dim: ``d``; charge_dim: channels ``c`` of the per-particle scalars
            (the pair channel is their inner product ``⟨q_i, q_j⟩``).
        charge_on_diagonal: put ``q_i`` on token ``(i, i)`` (``False``: the LPS code's
            layout, charges only through the products).

    ``forward(pos (B, n, d), vel (B, n, d), charge (B, n, c)) -> (B, n, d)``: predicted
    positions, rows ``[.., d]``.
    """

    def __init__(self, num_nodes: int = 5, dim: int = 64, layers: int = 8, heads: int = 4,
                 ff: int | None = None, dropout: float = 0.0, space_dim: int = 3, charge_dim: int = 1,
                 charge_on_diagonal: bool = True):
        super().__init__()
        if num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
        self.num_nodes, self.space_dim, self.charge_dim = num_nodes, space_dim, charge_dim
        self.charge_on_diagonal = charge_on_diagonal
        node_channels = 2 * space_dim + (charge_dim if charge_on_diagonal else 0)
        self.embed = nn.Sequential(nn.Linear(node_channels + 2, dim), nn.Dropout(dropout))
        self.slot_embedding = nn.Parameter(torch.randn(num_nodes * num_nodes, dim))
        self.embed_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, ff or dim, dropout=dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim),
                                             enable_nested_tensor=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(dim, space_dim))

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, charge_on_diagonal={self.charge_on_diagonal}"

    def tokens(self, pos: Tensor, vel: Tensor, charge: Tensor) -> Tensor:
        """The raw pair tokens ``[B, n, n, C]``: channels ``(x_i, v_i[, q_i])`` on the
        diagonal, ``(q_i·q_j, ‖x_i − x_j‖²)`` off it (0 elsewhere)."""
        n = pos.shape[1]
        if n != self.num_nodes:
            raise ValueError(f"NBodyPairTransformer(num_nodes={self.num_nodes}) got {n} particles; "
                             "its positional embeddings cover num_nodes² pair slots")
        charge = charge.to(pos.dtype)
        eye = torch.eye(n, dtype=pos.dtype, device=pos.device)
        off = (1 - eye)[None, :, :, None]
        products = torch.einsum("bic,bjc->bij", charge, charge)[..., None]
        dist2 = (pos[:, :, None] - pos[:, None]).pow(2).sum(-1, keepdim=True)
        node = [pos, vel] + ([charge] if self.charge_on_diagonal else [])
        node = torch.cat(node, -1)                                           # [B, n, C_node]
        diagonal = torch.diag_embed(rearrange(node, "b n c -> b c n"))       # [B, C_node, n, n]
        diagonal = rearrange(diagonal, "b c i j -> b i j c")
        return torch.cat([diagonal, torch.cat([products, dist2], -1) * off], -1)

    def forward(self, pos: Tensor, vel: Tensor, charge: Tensor) -> Tensor:
        n = pos.shape[1]
        h = self.embed(rearrange(self.tokens(pos, vel, charge), "b i j c -> b (i j) c"))
        h = self.embed_dropout(h + self.slot_embedding.to(h.dtype))
        h = rearrange(self.encoder(h), "b (i j) c -> b i j c", i=n)
        diagonal = torch.diagonal(h, dim1=1, dim2=2)                         # [B, C, n]
        return pos + self.head(rearrange(diagonal, "b c n -> b n c"))
