"""DGCNN (Wang et al. 2019) for point-cloud classification, built from PyG's
:class:`~torch_geometric.nn.conv.EdgeConv`: the reference point-cloud model of the
ModelNet40 recipes.

PyG's ``DynamicEdgeConv`` recomputes the k-nearest-neighbour graph in feature space at
each layer with ``torch_cluster.knn``; ``torch-cluster`` (a compiled extension with no
wheels on PyPI for this torch) is not installed here, so :func:`dense_knn` computes the
same graph densely in torch (``[B, P, P]`` distances per cloud, ``topk``) and each layer
is PyG's ``EdgeConv`` on it: ``x_i' = max_j MLP([x_i, x_j − x_i])`` over the ``k`` nearest
``j`` (``i`` itself included, as ``DynamicEdgeConv`` does).

Not rotation-invariant (the first graph is on raw coordinates, and the MLPs see
``x_i`` itself); permutation-invariant over points.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import register_model


def dense_knn(x: Tensor, k: int) -> Tensor:
    """``edge_index [2, B·P·k]`` (source ``j``, target ``i``) of the ``k`` nearest
    neighbours of each point of ``x (B, P, F)`` within its own cloud (itself included),
    into the flattened ``B·P`` points."""
    b, p, _ = x.shape
    with torch.no_grad():
        dist = torch.cdist(x, x)                                        # [B, P, P]
        nearest = dist.topk(min(k, p), dim=-1, largest=False).indices   # [B, P, k]
    offset = (torch.arange(b, device=x.device) * p)[:, None, None]
    target = (torch.arange(p, device=x.device)[None, :, None] + offset).expand_as(nearest)
    return torch.stack([(nearest + offset).flatten(), target.flatten()])


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


@register_model("dgcnn")
class DGCNN(nn.Module):
    """Stacked dynamic EdgeConv layers (graph rebuilt in feature space at each layer),
    their outputs concatenated, a point-wise layer to ``embed`` features, max-pooled over
    the points, then an MLP classifier.

    Args: ``num_classes``; ``hidden`` (first EdgeConv width; layer ``i ≥ 1`` has ``hidden·2^(i−1)``: the
    paper's 64, 64, 128, 256);
    ``layers`` (EdgeConv layers); ``k`` (neighbours, paper 20); ``embed`` (paper 1024);
    ``in_features``; ``dropout``.

    ``forward(points (B, P, in_features)) -> logits (B, num_classes)``.
    """

    def __init__(self, num_classes: int, hidden: int = 64, layers: int = 4, k: int = 20,
                 embed: int = 1024, in_features: int = 3, dropout: float = 0.5):
        super().__init__()
        from torch_geometric.nn import EdgeConv

        if layers < 1 or k < 1:
            raise ValueError(f"layers and k must be at least 1, got layers={layers}, k={k}")
        self.k = k
        widths = [hidden * 2 ** max(0, i - 1) for i in range(layers)]    # 64, 64, 128, 256
        self.convs = nn.ModuleList()
        width = in_features
        for w in widths:
            self.convs.append(EdgeConv(_mlp([2 * width, w]), aggr="max"))
            width = w
        self.embed = _mlp([sum(widths), embed])
        self.head = nn.Sequential(nn.Linear(embed, hidden * 4), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                  nn.Linear(hidden * 4, num_classes))

    def forward(self, points: Tensor) -> Tensor:
        b, p, _ = points.shape
        h, outs = points, []
        for conv in self.convs:
            edges = dense_knn(h, self.k)
            h = conv(h.reshape(b * p, -1), edges).reshape(b, p, -1)
            outs.append(h)
        return self.head(self.embed(torch.cat(outs, -1)).amax(1))
