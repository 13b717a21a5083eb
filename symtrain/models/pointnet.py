"""A small PointNet (Qi et al., 2017) for point-cloud classification."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model


@register_model("pointnet")
class PointNet(nn.Module):
    """A shared MLP on each point, max-pooled over the points, then an MLP classifier
    (no input or feature transform nets).

    Permutation-invariant over points but not rotation-invariant: it sees raw
    coordinates; frame averaging or canonicalization makes it so.

    Args:
        num_classes: outputs; hidden: width of the point MLP and head;
        layers: point-MLP layers; in_features: coordinates per point.

    ``forward(points (B, P, in_features)) -> logits (B, num_classes)``.
    """

    def __init__(self, num_classes: int, hidden: int = 128, layers: int = 3, in_features: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        blocks, width = [], in_features
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU()]
            width = hidden
        self.point_mlp = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    def forward(self, points: Tensor) -> Tensor:
        return self.head(self.point_mlp(points).amax(1))
