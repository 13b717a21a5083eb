"""Base models on dense graphs ``adjacency (B, N, N)``: an MLP on the flattened adjacency
and a transformer over node tokens (neither permutation-equivariant), and a dense GIN
(permutation-invariant, but no more expressive than 1-WL)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from .registry import register_model


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU (and dropout) between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


@register_model("adjacency_mlp")
class AdjacencyMLP(nn.Module):
    """MLP on the flattened adjacency: ``(B, N, N) -> (B, num_classes)`` logits.

    Sees node identities (the order of rows), so it can tell apart graphs that 1-WL
    cannot, and is not permutation-invariant.
    """

    def __init__(self, num_nodes: int, num_classes: int, hidden: int = 256, layers: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.num_nodes = num_nodes
        self.net = mlp([num_nodes * num_nodes] + [hidden] * (layers - 1) + [num_classes], dropout)

    def forward(self, adjacency: Tensor) -> Tensor:
        return self.net(rearrange(adjacency, "b n m -> b (n m)").float())


@register_model("gin")
class DenseGIN(nn.Module):
    """Graph isomorphism network on dense adjacency with sum pooling:
    ``(B, N, N) -> (B, num_classes)``. Node features are ones (the graphs have none)."""

    def __init__(self, num_classes: int, hidden: int = 64, layers: int = 4):
        from torch_geometric.nn import DenseGINConv

        super().__init__()
        dims = [1] + [hidden] * layers
        self.convs = nn.ModuleList(DenseGINConv(mlp([a, hidden, b]), train_eps=True)
                                   for a, b in zip(dims[:-1], dims[1:], strict=False))
        self.head = mlp([hidden * layers, hidden, num_classes])

    def forward(self, adjacency: Tensor) -> Tensor:
        adjacency = adjacency.float()
        h = adjacency.new_ones(*adjacency.shape[:2], 1)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(h, adjacency))
            pooled.append(h.sum(1))
        return self.head(torch.cat(pooled, -1))


@register_model("node_transformer")
class NodeTransformer(nn.Module):
    """Transformer over node tokens for node classification on padded graphs.

    Token ``i`` embeds ``(features_i, adjacency row i)`` plus a learned position
    embedding of slot ``i``: it is not permutation-equivariant on its own.
    ``forward(adjacency (B, N, N), features (B, N, F), mask (B, N)) -> (B, N, num_classes)``.
    """

    def __init__(self, max_nodes: int, in_features: int, num_classes: int, dim: int = 64,
                 layers: int = 4, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        self.max_nodes = max_nodes
        self.embed = nn.Linear(in_features + max_nodes, dim)
        self.position = nn.Parameter(torch.randn(max_nodes, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def forward(self, adjacency: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        b, n = mask.shape
        if n > self.max_nodes:
            raise ValueError(f"graphs have {n} node slots but the model was built for "
                             f"max_nodes={self.max_nodes}")
        rows = torch.nn.functional.pad(adjacency.float(), (0, self.max_nodes - n))
        h = self.embed(torch.cat([features.float(), rows], -1)) + self.position[:n]
        h = self.encoder(h, src_key_padding_mask=~mask)
        return self.head(h)
