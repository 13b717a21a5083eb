"""The ``gine`` model: a GINE network (Hu et al., ICLR 2020; ``torch_geometric.nn.GINEConv``)
on the dense graph batches of the real benchmarks, the message-passing baseline of LRGB.

Input ``(adjacency, features, mask)``: ``adjacency [B, N, N]`` or ``[B, N, N, E]`` (an edge
wherever a channel is non-zero, its channels the edge features), ``features [B, N, F]``,
``mask [B, N]`` (True for real nodes). Only real nodes and edges are passed on (sparse,
as PyG does), so the network is permutation-equivariant by construction. Node features
go through a linear map without bias (on one-hot OGB features, ``AtomEncoder``), edge
features through ``GINEConv``'s own linear map (``BondEncoder``), then ``layers``
GINE layers with batch norm, ReLU and residual connections. Readouts: ``"graph"`` (mean
over nodes → MLP, ``[B, C]``), ``"node"`` (MLP per node, ``[B, N, C]``, zeros on padding),
``"edge"`` (bilinear pair scores ``⟨W₁hᵢ, W₂hⱼ⟩``, ``[B, N, N, 1]``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..domains import NON_NEGATIVE_INT, POSITIVE_INT, PROBABILITY, check_args
from ..errors import ShapeError
from .graphs import mlp
from .registry import register_model

READOUTS = ("graph", "node", "edge")


@register_model("gine")
class GINE(nn.Module):
    """GINE on dense graph batches; see the module docstring."""

    @check_args(num_classes=POSITIVE_INT, in_features=NON_NEGATIVE_INT, edge_dim=POSITIVE_INT,
                hidden=POSITIVE_INT, layers=POSITIVE_INT, dropout=PROBABILITY)
    def __init__(self, num_classes: int, in_features: int = 0, edge_dim: int = 1, readout: str = "graph",
                 hidden: int = 64, layers: int = 4, dropout: float = 0.0):
        from torch_geometric.nn import GINEConv

        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout: one of {READOUTS}, got {readout!r}")
        self.readout, self.in_features = readout, in_features
        self.node_encoder = nn.Linear(max(in_features, 1), hidden, bias=False)
        self.convs = nn.ModuleList(GINEConv(mlp([hidden, hidden, hidden]), train_eps=True, edge_dim=edge_dim)
                                   for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        if readout == "edge":
            self.left, self.right = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        else:
            self.head = mlp([hidden, hidden, num_classes])

    def forward(self, adjacency: Tensor, features: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        from torch_geometric.nn import global_mean_pool

        adj = adjacency[..., None] if adjacency.dim() == 3 else adjacency
        if adj.dim() != 4 or adj.shape[1] != adj.shape[2]:
            raise ShapeError(f"gine: adjacency must be (B, N, N) or (B, N, N, E), got {tuple(adjacency.shape)}")
        b, n = adj.shape[:2]
        mask = torch.ones(b, n, dtype=torch.bool, device=adj.device) if mask is None else mask.bool()
        if features is None:
            features = adj.new_ones(b, n, 1)
        real = mask.reshape(-1)
        position = real.long().cumsum(0) - 1                 # index of each real node among them
        present = (adj != 0).any(-1) & mask[:, :, None] & mask[:, None, :]
        g, i, j = present.nonzero(as_tuple=True)
        edge_index = torch.stack([position[g * n + j], position[g * n + i]])  # message j -> i
        dtype = self.node_encoder.weight.dtype
        edge_attr = adj[g, i, j].to(dtype)
        batch = torch.arange(b, device=adj.device).repeat_interleave(n)[real]
        h = self.node_encoder(features.reshape(b * n, -1)[real].to(dtype))
        for conv, norm in zip(self.convs, self.norms, strict=False):
            h = h + self.dropout(torch.relu(norm(conv(h, edge_index, edge_attr))))
        if self.readout == "graph":
            return self.head(global_mean_pool(h, batch, size=b))
        if self.readout == "node":
            return _dense(self.head(h), real, b, n)
        left, right = _dense(self.left(h), real, b, n), _dense(self.right(h), real, b, n)
        return torch.einsum("bid,bjd->bij", left, right)[..., None]


def _dense(values: Tensor, real: Tensor, b: int, n: int) -> Tensor:
    """Per-real-node ``values [V, C]`` back at their places ``[B, N, C]`` (zeros elsewhere)."""
    out = values.new_zeros(b * n, values.shape[-1])
    out[real] = values
    return out.reshape(b, n, -1)
