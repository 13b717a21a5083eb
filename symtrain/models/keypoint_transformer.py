"""A plain transformer over the keypoints of a rigid-body scene (:mod:`symtrain.data.rigid`):
the one backbone every symmetrization method of the scaling study wraps.

Input: a dict of the task's fields (see :data:`RIGID_INPUTS`), batched over scenes ``B``
with ``K`` keypoint slots (real keypoints first, padding after them):

- ``keypoints_prev``, ``keypoints``: ``[B, K, 3]`` positions at ``t − Δ`` and ``t`` (m);
- ``gravity`` ``[B, 3]`` (m/s²), ``floor_point`` ``[B, 3]`` (m), ``floor_normal`` ``[B, 3]``;
- ``body_type`` ``[B, K]`` shape index (−1 padding), ``body_index`` ``[B, K]`` the body
  each keypoint belongs to (−1 padding), ``mass`` ``[B, K]`` (kg, 0 padding);
- ``mask`` ``[B, K]`` bool, True for real keypoints.

Output: ``[B, K, 3]``, the keypoints at ``t + Δ``, predicted as ``x_t + δ`` with ``δ`` read
from each keypoint's token. Padded rows return ``x_t`` unchanged (so a rigid motion of the
whole input moves them like the output: padding never breaks an equivariance test).

Token of keypoint ``i``: a linear map of ``(x_{t−Δ}, x_t, g/10, floor point, floor normal)``
(15 numbers, gravity divided by 10 m/s² to be of order one), plus a learned embedding of
its body's shape, one of its body index (which keypoints move together) and a linear map
of its body's log mass (:class:`RigidEmbedding`).
Attention is masked to real keypoints. There is no positional encoding: the model is
permutation-equivariant over keypoints, but sees raw coordinates, so it is *not*
E(3)-equivariant; the symmetrization wrappers make it so.

Sizes (:data:`TRANSFORMER_SIZES`, pre-norm encoder, feed-forward ``4·dim``, 4 heads):

=====  =====  ======  ==========
size   dim    layers  parameters
=====  =====  ======  ==========
xs     16     3       10,387
s      32     3       39,203
m      64     3       152,131
l      96     4       450,627
xl     128    6       1,193,987
=====  =====  ======  ==========

(``tests/test_rigid_models.py`` checks this table against the real counts.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..data.rigid import INPUT_KEYS, MAX_BODIES, SHAPES
from .registry import register_model

RIGID_INPUTS = INPUT_KEYS
"""Keys of a rigid-body model's input dict (the task's :class:`~symtrain.actions.Fields`,
:data:`symtrain.data.rigid.INPUT_KEYS`)."""

NUM_SHAPES = len(SHAPES)
GRAVITY_SCALE = 0.1     # gravity enters as g / 10 m/s²

TRANSFORMER_SIZES: dict[str, dict[str, int]] = {
    "xs": {"dim": 16, "layers": 3},
    "s": {"dim": 32, "layers": 3},
    "m": {"dim": 64, "layers": 3},
    "l": {"dim": 96, "layers": 4},
    "xl": {"dim": 128, "layers": 6},
}
"""Width/depth presets of :class:`KeypointTransformer`, from about 10⁴ to 10⁶ parameters."""


def preset(sizes: dict[str, dict[str, int]], size: str, **overrides: int | None) -> dict[str, int]:
    """The preset ``size`` of ``sizes`` with the non-``None`` ``overrides`` applied."""
    if size not in sizes:
        raise ValueError(f"unknown size {size!r}; sizes: {', '.join(sizes)}")
    return {**sizes[size], **{k: v for k, v in overrides.items() if v is not None}}


def check_rigid_inputs(inputs: Mapping[str, Tensor], model: str) -> None:
    """Raise a ``KeyError`` naming the missing keys of a rigid-body input dict."""
    if not isinstance(inputs, Mapping):
        raise TypeError(f"{model} takes a dict with keys {', '.join(RIGID_INPUTS)}, "
                        f"got {type(inputs).__name__}")
    missing = [k for k in RIGID_INPUTS if k not in inputs]
    if missing:
        raise KeyError(f"{model} input lacks {', '.join(missing)} (needs {', '.join(RIGID_INPUTS)})")


class RigidEmbedding(nn.Module):
    """Invariant per-keypoint embeddings ``[B, K, dim]``: shape type, body index (index 0
    of each table is padding) and log mass. Shared by the transformer and the EGNN."""

    def __init__(self, dim: int, body_ids: bool = True):
        super().__init__()
        self.shape = nn.Embedding(NUM_SHAPES + 1, dim)
        self.body = nn.Embedding(MAX_BODIES + 1, dim) if body_ids else None
        self.mass = nn.Linear(1, dim)

    def forward(self, body_type: Tensor, body_index: Tensor, mass: Tensor, mask: Tensor) -> Tensor:
        real = mask.to(mass.dtype)[..., None]
        h = self.shape((body_type + 1).clamp(0, NUM_SHAPES)) + self.mass(mass.clamp_min(1e-6).log()[..., None] * real)
        if self.body is not None:
            h = h + self.body((body_index + 1).clamp(0, MAX_BODIES))
        return h


@register_model("keypoint_transformer")
class KeypointTransformer(nn.Module):
    """Transformer encoder over keypoint tokens predicting ``x_{t+Δ} = x_t + δ``.

    Args:
        size: a preset of :data:`TRANSFORMER_SIZES`; ``dim``, ``layers`` override it.
        heads: attention heads; ff: feed-forward width (default ``4·dim``); dropout.
        body_ids: add an embedding of each keypoint's body index.

    ``forward(inputs: dict) -> [B, K, 3]`` (keys :data:`RIGID_INPUTS`; see the module
    docstring for shapes and the token).
    """

    def __init__(self, size: str = "m", dim: int | None = None, layers: int | None = None,
                 heads: int = 4, ff: int | None = None, dropout: float = 0.0, body_ids: bool = True):
        super().__init__()
        cfg = preset(TRANSFORMER_SIZES, size, dim=dim, layers=layers)
        dim, layers = cfg["dim"], cfg["layers"]
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.size, self.dim, self.layers = size, dim, layers
        self.embed = nn.Linear(5 * 3, dim)
        self.scalars = RigidEmbedding(dim, body_ids)
        layer = nn.TransformerEncoderLayer(dim, heads, ff or 4 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)
        # Start near "no motion" (δ ≈ 0) rather than a random offset of ~0.3 m: otherwise
        # averaging methods, whose sign-flip copies cancel a constant δ, start far ahead.
        nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            self.head.weight.mul_(0.01)

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        check_rigid_inputs(inputs, type(self).__name__)
        prev, x, mask = inputs["keypoints_prev"], inputs["keypoints"], inputs["mask"]
        k = x.shape[1]
        per_scene = torch.cat([inputs["gravity"] * GRAVITY_SCALE, inputs["floor_point"],
                               inputs["floor_normal"]], -1)                      # [B, 9]
        tokens = torch.cat([prev, x, per_scene[:, None, :].expand(-1, k, -1)], -1)  # [B, K, 15]
        h = self.embed(tokens) + self.scalars(inputs["body_type"], inputs["body_index"],
                                              inputs["mass"].to(x.dtype), mask)
        h = self.encoder(h, src_key_padding_mask=~mask)
        delta = self.head(self.norm(h))
        return x + delta * mask.to(x.dtype)[..., None]
