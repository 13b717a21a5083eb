"""O(d)/SO(d) interface (and E(d)/SE(d) by centring) for point sets: a small
Vector-Neuron network (Deng et al. 2021), DGCNN-style kNN edge convolution plus global
pooling, maps centred positions, velocities and Gaussian noise vectors to ``d``
equivariant vectors; differentiable Gram–Schmidt turns them into an orthogonal matrix.

Where the noise goes (``noise_on``):

- ``"channel"``: one Gaussian vector per node, an extra input channel next to the
  positions and velocities (the network can learn to ignore it, which collapses
  symmetrization into canonicalization);
- ``"vectors"``: as in the LPS code, ``N(0, σ²)`` noise added to each point/vector field
  itself (one draw per field and node), and the kNN graph built on the noisy vectors.

Either way the noise is rotated and permuted with the input (``noise_action``), never
translated, so a transformed noise draw gives exactly the transformed element.

Conventions: vectors are rows ``[..., d]``; a group element ``R`` acts by ``v ↦ v Rᵀ``.
The element's columns are the Gram–Schmidt vectors, so ``g(h·x) = H g(x)`` and
``g⁻¹·x = x R`` is the input in the learned frame. For SO(d) the first column is
multiplied by ``det R``; for E(d) the translation is the (masked) centroid.
"""

from __future__ import annotations

from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ...actions.registry import create_action
from ...domains import POSITIVE, POSITIVE_INT, Count, Real, check_args
from ...errors import ShapeError, SymmetryError
from ...groups.base import Group, GroupContext
from ...tree import reference_tensor
from .base import Interface, RelaxedElement, node_view
from .registry import register_interface


def gram_schmidt(v: Tensor, proper: bool = False, eps: float = 1e-8) -> Tensor:
    """Orthonormalise the ``d`` columns of ``v`` ``[B, d, d]`` in order (differentiable).

    Equivariant: ``gram_schmidt(H v) = H gram_schmidt(v)`` for orthogonal ``H``. With
    ``proper`` the first column is multiplied by the determinant, giving SO(d)
    (equivariant for rotations ``H``)."""
    cols: list[Tensor] = []
    for i in range(v.shape[-1]):
        u = v[..., i]
        for c in cols:
            u = u - (u * c).sum(-1, keepdim=True) * c
        cols.append(u / u.norm(dim=-1, keepdim=True).clamp_min(eps))
    r = torch.stack(cols, -1)
    if proper:
        det = torch.linalg.det(r).sign().detach()
        r = torch.cat([r[..., :1] * det[:, None, None], r[..., 1:]], -1)
    return r


class VNLinear(nn.Module):
    """``[..., C_in, d] -> [..., C_out, d]``: mixes vector channels, never coordinates."""

    @check_args(c_in=POSITIVE_INT, c_out=POSITIVE_INT)
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / c_in ** 0.5)

    def forward(self, v: Tensor) -> Tensor:
        return torch.einsum("oc,...cd->...od", self.weight.to(v.dtype), v)


class VNDropout(nn.Module):
    """Dropout of whole vectors ``[..., C, d]`` (one Bernoulli draw per vector, never per
    coordinate, which would break rotation equivariance); identity in eval mode."""

    @check_args(p=Real(0, 1, high_open=True))
    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, v: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return v
        keep = torch.rand(v.shape[:-1] + (1,), device=v.device) >= self.p
        return v * keep.to(v.dtype) / (1 - self.p)


class VNLeakyReLU(nn.Module):
    """Vector-Neuron ReLU: removes the component of each vector along a learned
    direction where it points against it (leaky with ``slope``)."""

    @check_args(c=POSITIVE_INT, slope=Real(0, 1), eps=POSITIVE)
    def __init__(self, c: int, slope: float = 0.2, eps: float = 1e-8):
        super().__init__()
        self.direction = VNLinear(c, c)
        self.slope, self.eps = slope, eps

    def forward(self, v: Tensor) -> Tensor:
        k = self.direction(v)
        dot = (v * k).sum(-1, keepdim=True)
        k2 = (k * k).sum(-1, keepdim=True).clamp_min(self.eps)
        projected = torch.where(dot >= 0, v, v - dot / k2 * k)
        return self.slope * v + (1 - self.slope) * projected


def _masked_mean(v: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the node axis 1 of ``[B, N, ...]``, real nodes only."""
    if mask is None:
        return v.mean(1)
    w = mask.to(v.dtype).reshape(*mask.shape, *([1] * (v.dim() - 2)))
    return (v * w).sum(1) / w.sum(1).clamp_min(1)


class VNEncoder(nn.Module):
    """Per-node equivariant vector features ``[B, N, hidden, d]`` from vector channels
    ``[B, N, C, d]``: kNN edge convolution (neighbours by distance between the rows of
    ``pos`` ``[B, N, D]``, if given), then ``layers`` blocks of VN-linear/ReLU with global
    mean pooling. Invariant per-node scalars ``[B, N, S]`` gate the first layer.
    ``dropout`` drops whole vectors after every layer but the last (:class:`VNDropout`)."""

    @check_args(in_vectors=POSITIVE_INT, hidden=POSITIVE_INT, layers=POSITIVE_INT, knn=POSITIVE_INT,
                in_scalars=Count(0),
                dropout=Real(0, 1, high_open=True))
    def __init__(self, in_vectors: int, hidden: int = 32, layers: int = 2, knn: int = 4,
                 in_scalars: int = 0, dropout: float = 0.0):
        super().__init__()
        self.knn = knn
        self.dropout = VNDropout(dropout)
        self.edge = nn.Sequential(VNLinear(2 * in_vectors, hidden), VNLeakyReLU(hidden))
        self.lift = VNLinear(in_vectors, hidden)
        self.gate = nn.Linear(in_scalars, hidden) if in_scalars else None
        self.blocks = nn.ModuleList(
            nn.Sequential(VNLinear(2 * hidden, hidden), VNLeakyReLU(hidden)) for _ in range(layers))

    def forward(self, v: Tensor, pos: Tensor | None, mask: Tensor | None,
                scalars: Tensor | None = None) -> Tensor:
        b, n = v.shape[:2]
        k = min(self.knn, n - 1)
        if pos is not None and k > 0:
            # Neighbour indices only: no gradient (and no forward-mode AD, which cdist lacks).
            dist = torch.cdist(pos.detach(), pos.detach())
            blocked = torch.eye(n, dtype=torch.bool, device=pos.device)[None]
            if mask is not None:
                blocked = blocked | ~mask[:, None, :]
            dist = dist.masked_fill(blocked, float("inf"))
            idx = dist.topk(k, dim=-1, largest=False).indices                        # [B, N, k]
            nbr = v[torch.arange(b, device=v.device)[:, None, None], idx]           # [B, N, k, C, d]
            centre = v[:, :, None].expand_as(nbr)
            edge = self.edge(torch.cat([nbr - centre, centre], -2))
            h = edge.mean(2) + self.lift(v)
        else:
            h = self.lift(v)
        if self.gate is not None and scalars is not None:
            h = h * (1 + self.gate(scalars.to(h.dtype)))[..., None]
        for block in self.blocks:
            h = self.dropout(h)
            pooled = _masked_mean(h, mask)[:, None].expand_as(h)
            h = block(torch.cat([h, pooled], -2))
        if mask is not None:
            h = h * mask.to(h.dtype)[:, :, None, None]
        return h


def _rotation_part(group: Group) -> tuple[int, bool, bool]:
    """(d, proper, translations) of O(d)/SO(d)/E(d)/SE(d)."""
    if not _is_rotation_group(group):
        raise SymmetryError(f"{group} is not a rotation group (O(d), SO(d), E(d), SE(d))")
    return group.vector_dim, group.is_proper, group.has_translations


def _is_rotation_group(group: Group) -> bool:
    return len(group.factors) == 1 and group.is_continuous and group.vector_dim is not None


NOISE_ON = ("channel", "vectors")


def noise_norm(noise: Tensor | tuple[Tensor, ...]) -> Tensor:
    """Per-node size ``[B, N]`` of a noise draw (one ``[B, N, d]`` tensor, or one per
    field): sum of the vectors' norms, invariant to rotations, permuted with the nodes."""
    parts = noise if isinstance(noise, tuple) else (noise,)
    return sum(p.norm(dim=-1) for p in parts)


class PointEncoding(nn.Module):
    """Reads points, vectors and scalars of an input and returns the centred vector
    channels with the noise (an extra channel, or added to each channel), the kNN
    coordinates, mask, centroid and scalars (shared by the rotation and the product
    interfaces)."""

    @staticmethod
    def read(interface: Interface, x: Any, noise: Tensor | tuple[Tensor, ...],
             context: GroupContext | None, in_vectors: int, in_scalars: int, d: int,
             noise_on: str = "channel"):
        view = node_view(interface._action(), x, context)
        mask = view.mask
        channels, pos, centroid = [], None, None
        if view.points is not None:
            centroid = _masked_mean(view.points, mask)
            pos = view.points - centroid[:, None]
            channels.append(pos)
        channels += view.vectors
        if len(channels) != in_vectors:
            raise ShapeError(f"{type(interface).__name__}(in_vectors={in_vectors}) got {len(channels)} "
                             "point/vector fields; set in_vectors to the number of Points and "
                             "Vectors fields in the input")
        draws = noise if isinstance(noise, tuple) else (noise,)
        ref = channels[0] if channels else draws[0]
        if ref.shape[-1] != d:
            raise ShapeError(f"{interface.group} needs {d}-d vectors, got {ref.shape[-1]}-d")
        want = tuple(ref.shape[:2]) + (d,)
        count = in_vectors if noise_on == "vectors" else 1
        if len(draws) != count or any(e.shape != want for e in draws):
            shapes = [tuple(e.shape) for e in draws]
            raise ShapeError(f"noise (noise_on={noise_on!r}) must be {count} tensor(s) of shape {want}, "
                             f"got {shapes}")
        if noise_on == "vectors":                                                   # [B, N, C, d]
            v = torch.stack([c + e.to(ref.dtype) for c, e in zip(channels, draws, strict=True)], -2)
            pos = rearrange(v, "b n c d -> b n (c d)")      # kNN on the noisy vectors, as in LPS
        else:                                                                       # [B, N, C+1, d]
            v = torch.stack(channels + [draws[0].to(ref.dtype)], -2)
        scalars = None
        if in_scalars:
            scalars = view.features
            got = 0 if scalars is None else scalars.shape[-1]
            if got != in_scalars:
                raise ShapeError(f"{type(interface).__name__}(in_scalars={in_scalars}) got {got} "
                                 "per-node scalar channels (Nodes fields)")
        if bool(torch.isnan(v).any()):
            raise SymmetryError("NaN in the points/vectors given to the rotation interface")
        if mask is not None:
            v = v * mask.to(v.dtype)[:, :, None, None]
        return v, pos, mask, centroid, scalars


@register_interface("rotation")
class RotationInterface(Interface):
    """Equivariant interface for O(d), SO(d), E(d), SE(d) on point sets.

    Input: the Points field (centred) and any Vectors fields (velocities), as
    ``in_vectors`` vector channels; Nodes fields as ``in_scalars`` invariant scalars.
    Noise (see the module docstring), Gaussian with standard deviation ``noise_scale``:

    - ``noise_on="channel"``: one vector per node ``[B, N, d]``, an extra vector channel
      (acted on by :class:`~symtrain.actions.Vectors`);
    - ``noise_on="vectors"``: a tuple of ``in_vectors`` tensors ``[B, N, d]``, added to
      the point/vector fields in order (acted on by ``Fields(Vectors(), …)``); kNN on
      the noisy vectors.

    Args:
        group: ``"O3"``, ``"SO3"``, ``"E3"``, ``"SE3"`` (any d).
        in_vectors: number of point/vector fields per node.
        hidden, layers, knn: Vector-Neuron width (vector channels), depth and kNN size.
        noise_on: ``"channel"`` or ``"vectors"`` (the LPS way).
        dropout: probability of dropping a whole hidden vector in training (LPS: 0.08).
    """

    @check_args(in_vectors=POSITIVE_INT, in_scalars=Count(0), hidden=POSITIVE_INT, layers=POSITIVE_INT,
                knn=POSITIVE_INT,
                dropout=Real(0, 1, high_open=True))
    def __init__(self, group: str | Group = "O3", in_vectors: int = 1, in_scalars: int = 0,
                 hidden: int = 32, layers: int = 2, knn: int = 4, noise_on: str = "channel",
                 dropout: float = 0.0):
        super().__init__(group)
        if noise_on not in NOISE_ON:
            raise ValueError(f"noise_on must be one of {NOISE_ON}, got {noise_on!r}")
        if noise_on == "vectors" and in_vectors < 1:
            raise ValueError("noise_on='vectors' needs at least one point/vector field (in_vectors >= 1)")
        self.dim, self.proper, self.translations = _rotation_part(self.group)
        self.in_vectors, self.in_scalars, self.noise_on = in_vectors, in_scalars, noise_on
        if noise_on == "vectors":
            self.noise_action = create_action("fields", *(["vectors"] * in_vectors))
            channels = in_vectors
        else:
            self.noise_action = create_action("vectors")
            channels = in_vectors + 1
        self.encoder = VNEncoder(channels, hidden, layers, knn, in_scalars, dropout)
        self.frame = VNLinear(hidden, self.dim)

    @classmethod
    def supports(cls, group):
        return _is_rotation_group(group)

    @classmethod
    def infer_args(cls, symmetry, example):
        view = node_view(symmetry.input, example, symmetry.context(example))
        return {"in_vectors": int(view.points is not None) + len(view.vectors),
                "in_scalars": 0 if view.features is None else view.features.shape[-1]}

    def extra_repr(self) -> str:
        return (f"group={self.group}, in_vectors={self.in_vectors}, in_scalars={self.in_scalars}, "
                f"noise_on={self.noise_on!r}, dropout={self.encoder.dropout.p}")

    def sample_noise(self, x: Any, context: GroupContext, scale: float,
                     generator: torch.Generator | None = None) -> Tensor | tuple[Tensor, ...]:
        ref = reference_tensor(x)
        dtype = ref.dtype if ref.is_floating_point() else None
        draws = tuple(scale * torch.randn(context.batch_size, context.num_nodes, self.dim,
                                          generator=generator, device=ref.device, dtype=dtype)
                      for _ in range(self.in_vectors if self.noise_on == "vectors" else 1))
        return draws if self.noise_on == "vectors" else draws[0]

    def encode(self, x: Any, noise: Tensor, context: GroupContext | None):
        """Per-node VN features ``[B, N, H, d]``, the rotation ``[B, d, d]``, mask, centroid."""
        v, pos, mask, centroid, scalars = PointEncoding.read(
            self, x, noise, context, self.in_vectors, self.in_scalars, self.dim, self.noise_on)
        h = self.encoder(v, pos, mask, scalars)
        vecs = self.frame(_masked_mean(h, mask))                                    # [B, d, d] rows
        rot = gram_schmidt(rearrange(vecs, "b k d -> b d k"), proper=self.proper)
        return h, rot, mask, centroid

    def element(self, rot: Tensor, centroid: Tensor | None, context: GroupContext | None):
        group = self.group.factors[-1]
        if not self.translations:
            return group.from_parts(rot)
        if context is not None and context.centroid is not None:
            centroid = context.centroid
        if centroid is None:
            raise SymmetryError(f"{self.group} needs positions (a Points field) to fix the translation")
        return group.from_parts(rot, centroid.to(rot.dtype))

    def relaxed(self, x: Any, noise: Tensor, context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        _, rot, _, centroid = self.encode(x, noise, context)
        return RelaxedElement(self.element(rot, centroid, context), (None,), rot.new_zeros(()))
