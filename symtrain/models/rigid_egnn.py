"""The E(3)-equivariant reference for the rigid-body task: EGNN (Satorras et al. 2021) from
the maintained ``egnn-pytorch`` package (``EGNN_Network``), wrapped so that it sees
coordinates only as node positions and everything else as invariant features.

**Encoding.** A scene with ``K`` keypoint slots becomes a graph of ``N = 2K + 3`` nodes:

- nodes ``0..K−1`` at ``x_{t−Δ}``, nodes ``K..2K−1`` at ``x_t`` (one pair per keypoint);
- three virtual nodes at the floor point ``p``, at ``p + n`` (floor normal, 1 m) and at
  ``p + g·0.1 s²`` (gravity, about 1 m down).

Each is an equivariant function of the input (a rigid motion moves all of them the same
way), so gravity and floor reach the network as positions, never as raw vectors.
Invariant node features: a learned embedding of the node's role (previous keypoint,
current keypoint, floor, normal tip, gravity tip) plus, on keypoint nodes, the shape
type, the body index and the log mass (:class:`~symtrain.models.keypoint_transformer.RigidEmbedding`).
Edges are dense (all pairs of real nodes) and carry a learned embedding of the pair's
relation: 0 other, 1 same body, 2 same keypoint (its two times), 3 between virtual nodes.
Padded keypoint slots are masked out of every message.

**Output.** The positions of the ``x_t`` nodes after the last layer, ``[B, K, 3]``: each
EGNN layer moves node ``i`` by ``Σ_j w_ij (x_i − x_j)`` with invariant weights, so the
prediction is ``x_t`` plus an equivariant displacement, exactly E(3)-equivariant
(reflections included). Padded rows return ``x_t`` unchanged.

Sizes (:data:`EGNN_SIZES`; ``m_dim`` = message width, edge embedding 4):

=====  =====  ======  =====  ==========
size   dim    layers  m_dim  parameters
=====  =====  ======  =====  ==========
xs     16     2       16     12,250
s      24     3       24     39,967
m      48     4       32     164,276
l      64     5       64     448,897
xl     112    5       64     1,020,385
=====  =====  ======  =====  ==========

(``tests/test_rigid_models.py`` checks this table against the real counts.)

``egnn-pytorch`` is an optional dependency: ``pip install symtrain[egnn]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

import torch
from torch import Tensor, nn

from .._optional import import_optional
from .keypoint_transformer import RigidEmbedding, check_rigid_inputs, preset
from .registry import register_model

EGNN_SIZES: dict[str, dict[str, int]] = {
    "xs": {"dim": 16, "layers": 2, "m_dim": 16},
    "s": {"dim": 24, "layers": 3, "m_dim": 24},
    "m": {"dim": 48, "layers": 4, "m_dim": 32},
    "l": {"dim": 64, "layers": 5, "m_dim": 64},
    "xl": {"dim": 112, "layers": 5, "m_dim": 64},
}
"""Width/depth presets of :class:`RigidEGNN`, from about 10⁴ to 10⁶ parameters."""

GRAVITY_NODE_SCALE = 0.1  # s²: the gravity node sits at floor point + g · 0.1 s² (≈ 1 m)
EDGE_OTHER, EDGE_SAME_BODY, EDGE_SAME_KEYPOINT, EDGE_VIRTUAL = range(4)
ROLE_PREV, ROLE_CURRENT, ROLE_FLOOR, ROLE_NORMAL, ROLE_GRAVITY = range(5)


def import_egnn() -> ModuleType:
    """The ``egnn_pytorch`` module, or an ``ImportError`` saying how to install it."""
    return import_optional("egnn_pytorch", "RigidEGNN", "egnn", "  (installs egnn-pytorch)")


def rigid_graph(inputs: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The EGNN graph of a batch of scenes (see the module docstring).

    Returns ``coords [B, N, 3]``, ``roles [B, N]`` (long), ``edges [B, N, N]`` (long
    relation tokens) and ``mask [B, N]`` (bool), with ``N = 2K + 3``.
    """
    prev, x, mask = inputs["keypoints_prev"], inputs["keypoints"], inputs["mask"]
    b, k, _ = x.shape
    floor = inputs["floor_point"]
    virtual = torch.stack([floor, floor + inputs["floor_normal"],
                           floor + GRAVITY_NODE_SCALE * inputs["gravity"]], 1)       # [B, 3, 3]
    coords = torch.cat([prev, x, virtual.to(x.dtype)], 1)
    roles = torch.tensor([ROLE_PREV] * k + [ROLE_CURRENT] * k + [ROLE_FLOOR, ROLE_NORMAL, ROLE_GRAVITY],
                         device=x.device).expand(b, -1)
    real = torch.ones(b, 3, dtype=torch.bool, device=x.device)
    node_mask = torch.cat([mask, mask, real], 1)
    body = inputs["body_index"]
    body = torch.cat([body, body, body.new_full((b, 3), -2)], 1)                   # virtual: −2
    slot = torch.arange(2 * k + 3, device=x.device) % k
    slot[2 * k:] = -1
    is_virtual = body == -2
    edges = torch.full((b, 2 * k + 3, 2 * k + 3), EDGE_OTHER, dtype=torch.long, device=x.device)
    same_body = (body[:, :, None] == body[:, None, :]) & (body[:, :, None] >= 0)
    edges[same_body] = EDGE_SAME_BODY
    same_keypoint = (slot[:, None] == slot[None, :]) & (slot[:, None] >= 0)
    edges[same_keypoint.expand(b, -1, -1) & same_body] = EDGE_SAME_KEYPOINT
    edges[is_virtual[:, :, None] & is_virtual[:, None, :]] = EDGE_VIRTUAL
    return coords, roles, edges, node_mask


@register_model("rigid_egnn")
class RigidEGNN(nn.Module):
    """``egnn_pytorch.EGNN_Network`` on the rigid-body graph of :func:`rigid_graph`.

    Args:
        size: a preset of :data:`EGNN_SIZES`; ``dim``, ``layers``, ``m_dim`` override it.
        edge_dim: width of the edge-relation embedding.
        body_ids: embed each keypoint's body index.
        coor_clamp: clamp of the per-edge coordinate weights (egnn-pytorch's
            ``coor_weights_clamp_value``; keeps deep stacks from diverging early in training).
        norm_coors: egnn-pytorch's ``norm_coors`` (move along unit vectors
            ``(x_i − x_j)/|x_i − x_j|``). Off: a keypoint at rest has ``x_t ≈ x_{t−Δ}``, and
            normalising that near-zero difference amplifies rounding (float32 equivariance
            error 1e-4) and gradients (``1/|x_i − x_j|``).

    The bias of each layer's last coordinate-weight layer starts at 0 (egnn-pytorch
    initialises weights at 1e-3 but leaves biases at their default, about ±0.1): otherwise
    the first update ``Σ_j w_ij (x_i − x_j)`` over 51 dense nodes moves every node by
    metres (initial MSE ~ 200 m² against ~ 0.003 m² for "no motion").

    ``forward(inputs: dict) -> [B, K, 3]`` (keys
    :data:`~symtrain.models.keypoint_transformer.RIGID_INPUTS`).
    """

    def __init__(self, size: str = "m", dim: int | None = None, layers: int | None = None,
                 m_dim: int | None = None, edge_dim: int = 4, body_ids: bool = True,
                 coor_clamp: float | None = 2.0, norm_coors: bool = False):
        super().__init__()
        egnn = import_egnn()
        cfg = preset(EGNN_SIZES, size, dim=dim, layers=layers, m_dim=m_dim)
        self.size, self.dim, self.layers = size, cfg["dim"], cfg["layers"]
        self.roles = nn.Embedding(5, self.dim)
        self.scalars = RigidEmbedding(self.dim, body_ids)
        self.egnn = egnn.EGNN_Network(depth=cfg["layers"], dim=cfg["dim"], m_dim=cfg["m_dim"],
                                      num_edge_tokens=4, edge_dim=edge_dim,
                                      coor_weights_clamp_value=coor_clamp, norm_coors=norm_coors)
        # The last layer's feature update is never read (only coordinates are): drop it, so
        # every parameter gets a gradient (and none is counted for nothing).
        last = self.egnn.layers[-1][1]
        last.node_mlp, last.node_norm = None, nn.Identity()
        for _, layer in self.egnn.layers:
            nn.init.zeros_(layer.coors_mlp[-1].bias)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        check_rigid_inputs(inputs, type(self).__name__)
        x, mask = inputs["keypoints"], inputs["mask"]
        k = x.shape[1]
        coords, roles, edges, node_mask = rigid_graph(inputs)
        keypoint = self.scalars(inputs["body_type"], inputs["body_index"], inputs["mass"].to(x.dtype), mask)
        feats = self.roles(roles).to(x.dtype)
        feats = feats + torch.cat([keypoint, keypoint, keypoint.new_zeros(x.shape[0], 3, self.dim)], 1)
        _, out = self.egnn(feats, coords, edges=edges, mask=node_mask)
        return torch.where(mask[..., None], out[:, k:2 * k], x)
