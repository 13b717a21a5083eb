"""Infinitesimal generators: how a one-parameter transformation ``T_t`` moves a tensor at
``t = 0``, i.e. the tangent ``d/dt T_t x |_{t=0}``.

Two families share one interface (:class:`Generator`), so :func:`~symtrain.lie.lie_derivative`
has a single code path:

- :class:`ImageGenerator`: spatial flows on images ``(B, C, H, W)`` (translation, rotation,
  scale, shear, stretch, hyperbolic rotation) and colour changes (brightness, contrast,
  saturation). Coordinates follow :class:`symtrain.actions.Image`: x to the right, y up,
  origin at the image centre. ``t`` is in **pixels of the model input** for translations
  and dimensionless (radians, log-scale) for the others, so models at 224 and 384 pixels
  compare fairly. The tangent of a flow with velocity ``v`` is ``-∇I · v`` with ``∇I`` a
  central-difference image gradient in pixel units (never autodiff through bilinear
  interpolation, whose derivative at grid points is one-sided).
- :class:`ActionGenerator`: an element ``ξ`` of the Lie algebra of a continuous group in
  :mod:`symtrain.groups` (SO(d), O(d), E(d)), acting on inputs and outputs through the
  :class:`~symtrain.actions.Action` of a :class:`~symtrain.Symmetry`. Its tangent is the
  derivative of ``act(exp(tξ), x)`` at ``t = 0`` (forward-mode AD through the action).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ..actions.base import Action
from ..domains import Count, OneOf, check_args, check_fields
from ..errors import ArgumentError, ShapeError, SymmetryError
from ..symmetry import Symmetry
from ..tree import reference_tensor, tree_map

#: Generators of the plane's affine group, ``v(x, y) = A (x, y)ᵀ + b``, as ``(A, b)``.
_AFFINE: dict[str, tuple[tuple[tuple[float, float], tuple[float, float]], tuple[float, float]]] = {
    "translation_x": (((0, 0), (0, 0)), (1, 0)),
    "translation_y": (((0, 0), (0, 0)), (0, 1)),
    "rotation": (((0, -1), (1, 0)), (0, 0)),
    "scale": (((1, 0), (0, 1)), (0, 0)),
    "shear_x": (((0, 1), (0, 0)), (0, 0)),
    "shear_y": (((0, 0), (1, 0)), (0, 0)),
    "stretch_x": (((1, 0), (0, 0)), (0, 0)),
    "stretch_y": (((0, 0), (0, 1)), (0, 0)),
    "hyperbolic_rotation": (((0, 1), (1, 0)), (0, 0)),
}
_COLOUR = ("brightness", "contrast", "saturation")

#: Every image generator, in report order.
IMAGE_GENERATORS: tuple[str, ...] = tuple(_AFFINE) + _COLOUR

#: How a tensor is transformed: ``"invariant"`` (not at all: logits, probabilities,
#: pooled features), ``"image"`` ``(B, C, H, W)``, ``"tokens"`` ``(B, N, C)`` with
#: ``num_prefix_tokens`` untransformed tokens first and a square grid of patches after.
LAYOUTS = ("invariant", "image", "tokens")


@check_args(order=OneOf(2, 4))
def image_gradient(img: Tensor, *, order: int = 2, padding: str = "replicate") -> tuple[Tensor, Tensor]:
    """Central-difference derivatives of ``img`` ``(..., H, W)`` along columns and rows,
    ``(d/dj, d/di)``, in pixel units.

    Args:
        order: 2 (stencil ``(f[+1] − f[−1]) / 2``) or 4 (``(−f[+2] + 8f[+1] − 8f[−1] + f[−2]) / 12``).
        padding: how the image continues past its border (``F.pad`` mode: ``"replicate"``,
            ``"reflect"``, ``"circular"``, or ``"zeros"``).
    """
    if order not in (2, 4):
        raise SymmetryError(f"finite-difference order must be 2 or 4, got {order}")
    r = order // 2
    mode = "constant" if padding == "zeros" else padding
    lead = img.shape[:-2]
    flat = img.reshape(-1, 1, *img.shape[-2:])
    p = F.pad(flat, (r, r, r, r), mode=mode)
    h, w = img.shape[-2:]

    def diff(axis: int) -> Tensor:
        def at(k: int) -> Tensor:  # the image shifted by k along axis, cropped to H × W
            if axis == -1:
                return p[..., r:r + h, r + k:r + k + w]
            return p[..., r + k:r + k + h, r:r + w]
        if order == 2:
            return (at(1) - at(-1)) / 2
        return (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / 12

    return diff(-1).reshape(*lead, h, w), diff(-2).reshape(*lead, h, w)


def _grid_coordinates(h: int, w: int, reference: tuple[int, int], like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(x, y)``, each ``(H, W)``, of an ``H × W`` map in pixels
    of a ``reference`` image covering the same field of view (x right, y up, origin at
    the centre)."""
    h0, w0 = reference
    xs = ((torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / w - 0.5) * w0
    ys = (0.5 - (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / h) * h0
    return xs[None, :].expand(h, w), ys[:, None].expand(h, w)


class Generator:
    """An infinitesimal transformation. Subclasses implement :meth:`bind`."""

    name: str = ""

    def bind(self, x: Any, output: Any) -> "BoundGenerator":
        """The tangent at the input ``x`` and the output action, for one evaluation."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@dataclass
class BoundGenerator:
    """A generator fixed to one input: ``input_tangent`` (same structure as ``x``) and
    ``output_tangent(y)``, the generator applied to an output ``y`` (zero for invariant
    outputs)."""

    name: str
    input_tangent: Any
    output_tangent: Callable[[Any], Any]


@dataclass(frozen=True, repr=False)
class ImageGenerator(Generator):
    """One image generator by name (see :data:`IMAGE_GENERATORS`).

    Args:
        name: e.g. ``"translation_x"`` (t in pixels of the input), ``"rotation"`` (t in
            radians, counter-clockwise), ``"scale"``, ``"stretch_x"`` (``x ↦ eᵗx``),
            ``"hyperbolic_rotation"`` (boost ``[[0, 1], [1, 0]]``), ``"brightness"``
            (``x + t``), ``"contrast"`` (``(1 + t) x`` on the normalised image, the
            reference code's "saturate"), ``"saturation"`` (colour scaled away from the
            per-pixel channel mean).
        order, padding: finite-difference stencil of the image gradient, see
            :func:`image_gradient`. ``padding="circular"`` makes translations circular shifts.
    """

    name: str
    order: int = 2
    padding: str = "replicate"
    __domains__ = dict(order=OneOf(2, 4))

    def __post_init__(self):
        check_fields(self)
        if self.name not in IMAGE_GENERATORS:
            raise SymmetryError(f"unknown image transform {self.name!r}; choose one of "
                                f"{', '.join(IMAGE_GENERATORS)} (or 'all')")

    @property
    def spatial(self) -> bool:
        return self.name in _AFFINE

    def image_tangent(self, img: Tensor, reference: tuple[int, int], *, is_input: bool) -> Tensor:
        """``d/dt T_t img`` for an image or feature map ``(B, C, H, W)`` covering the
        same field of view as a ``reference``-sized input. Colour generators move only
        the input (``is_input``); on feature maps they are zero."""
        if not self.spatial:
            if not is_input:
                return torch.zeros_like(img)
            if self.name == "brightness":
                return torch.ones_like(img)
            if self.name == "contrast":
                return img
            return img - img.mean(1, keepdim=True)
        (a, b) = _AFFINE[self.name]
        h, w = img.shape[-2:]
        x, y = _grid_coordinates(h, w, reference, img)
        vx = a[0][0] * x + a[0][1] * y + b[0]
        vy = a[1][0] * x + a[1][1] * y + b[1]
        # velocity from reference pixels to this map's pixels
        vx, vy = vx * (w / reference[1]), vy * (h / reference[0])
        dj, di = image_gradient(img, order=self.order, padding=self.padding)
        # ∇I = (dI/dx, dI/dy) = (dI/dj, −dI/di) since rows run downwards and y up
        return -(dj * vx - di * vy)

    def tangent(self, t: Tensor, layout: str, reference: tuple[int, int], *,
                num_prefix_tokens: int = 0, is_input: bool = False) -> Tensor:
        """The tangent of a tensor with the given layout (see :data:`LAYOUTS`)."""
        if layout == "invariant":
            return torch.zeros_like(t)
        if layout == "image":
            if t.dim() != 4:
                raise ShapeError(f"an image-like tensor is (B, C, H, W), got shape {tuple(t.shape)}")
            return self.image_tangent(t, reference, is_input=is_input)
        if layout == "tokens":
            side = token_grid_side(t, num_prefix_tokens)
            prefix, patches = t[:, :num_prefix_tokens], t[:, num_prefix_tokens:]
            img = rearrange(patches, "b (h w) c -> b c h w", h=side)
            tan = rearrange(self.image_tangent(img, reference, is_input=is_input), "b c h w -> b (h w) c")
            return torch.cat([torch.zeros_like(prefix), tan], 1)
        raise SymmetryError(f"unknown output layout {layout!r}; choose one of {LAYOUTS} or pass an Action")

    def bind(self, x: Any, output: Any) -> BoundGenerator:
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ShapeError(f"image transforms need an image batch (B, C, H, W), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        ref = (x.shape[-2], x.shape[-1])

        def out_tangent(y: Tensor) -> Tensor:
            # ``output``: (layout, num_prefix_tokens), or a function of y giving them
            layout, prefix = output(y) if callable(output) else output
            return self.tangent(y, layout, ref, num_prefix_tokens=prefix)
        return BoundGenerator(self.name, self.tangent(x, "image", ref, is_input=True), out_tangent)


def token_grid_side(t: Tensor, num_prefix_tokens: int) -> int:
    """Side of the square patch grid of tokens ``(B, N, C)`` after ``num_prefix_tokens``."""
    if t.dim() != 3:
        raise ShapeError(f"tokens are (B, N, C), got shape {tuple(t.shape)}")
    n = t.shape[1] - num_prefix_tokens
    side = math.isqrt(max(n, 0))
    if n <= 0 or side * side != n:
        raise ShapeError(f"{t.shape[1]} tokens minus {num_prefix_tokens} prefix (cls/distillation) "
                         f"tokens is not a square grid of patches; pass num_prefix_tokens")
    return side


@dataclass(frozen=True, repr=False)
class ActionGenerator(Generator):
    """The one-parameter subgroup ``exp(tξ)`` of a continuous group, acting through a
    :class:`Symmetry`'s input and output actions.

    Args:
        symmetry: group (SO(d), O(d), E(d)/SE(d), or a product with one of them) and actions.
        xi: Lie-algebra element, ``(d, d)`` (skew) for rotations or ``(d+1, d+1)`` in
            homogeneous coordinates for E(d) (see the groups' ``lie_algebra()``).
        factor: which factor of a direct product ``ξ`` belongs to (others stay at identity).
    """

    symmetry: Symmetry
    xi: Tensor
    name: str = "generator"
    factor: int | None = None
    __domains__ = dict(factor=Count(0, optional=True, what="the index of a factor of the group"))

    def __post_init__(self):
        check_fields(self)
        if self.factor is not None and self.factor >= len(self.symmetry.group.factors):
            raise ArgumentError("factor", f"{self.symmetry.group} has {len(self.symmetry.group.factors)} "
                                f"factors, so factor must be below that, got {self.factor}")

    def _element(self, t: Tensor, batch: int, context=None) -> Any:
        group = self.symmetry.group
        factors = group.factors
        index = self.factor if self.factor is not None else _continuous_factor(factors)
        target = factors[index]
        one = target.exp((t * self.xi.to(t.dtype))[None])
        elem = tree_map(lambda c: c.expand(batch, *c.shape[1:]), one)
        if len(factors) == 1:
            return elem
        # The other factors stay at the identity (S_n reads its size from the data's context).
        parts = [f.identity(batch, context=context, device=t.device, dtype=t.dtype) for f in factors]
        parts[index] = elem
        return group.join(tuple(parts))

    def action_tangent(self, action: Action, x: Any) -> Any:
        """``d/dt act(exp(tξ), x)`` at ``t = 0`` through ``action``."""
        if action.is_invariant:
            return _zeros_like(x)
        ref = reference_tensor(x)
        ctx = action.context(x)
        batch = action.batch_size(x)
        t0 = torch.zeros((), device=ref.device, dtype=ref.dtype)
        one = torch.ones_like(t0)

        def moved(t):
            return action.act(self.symmetry.group, self._element(t, batch, ctx), x, ctx)
        return torch.func.jvp(moved, (t0,), (one,))[1]

    def bind(self, x: Any, output: Any) -> BoundGenerator:
        action = self.symmetry.output if output is None else output
        if not isinstance(action, Action):
            raise SymmetryError("a group generator acts on outputs through an Action; pass "
                                f"output=<symtrain Action>, got {output!r}")
        return BoundGenerator(self.name, self.action_tangent(self.symmetry.input, x),
                              lambda y: self.action_tangent(action, y))


def _continuous_factor(factors) -> int:
    for i, f in enumerate(factors):
        if f.is_continuous:
            return i
    raise SymmetryError(f"{' x '.join(map(str, factors))} has no continuous factor: it has no "
                        "Lie algebra, so there is no Lie derivative; use equivariance_error")


def _zeros_like(x: Any) -> Any:
    return tree_map(torch.zeros_like, x)


def group_generators(symmetry: Symmetry | str, input: Action | None = None,
                     output: Action | None = None) -> list[ActionGenerator]:
    """One :class:`ActionGenerator` per basis element of the Lie algebra of the
    symmetry's continuous factor (e.g. rotations about x, y, z for SO(3); then
    translations along each axis for E(d)), named ``<group>/<motion>`` (see
    :func:`generator_name`).

    >>> import symtrain as st
    >>> sym = st.Symmetry("E3", input=st.actions.Points(), output=st.actions.Trivial())
    >>> [g.name for g in group_generators(sym)]
    ['E3/rotate_yz', 'E3/rotate_zx', 'E3/rotate_xy', 'E3/translate_x', 'E3/translate_y', 'E3/translate_z']
    """
    if not isinstance(symmetry, Symmetry):
        symmetry = Symmetry(symmetry, input=input, output=output or "trivial")
    index = _continuous_factor(symmetry.group.factors)
    group = symmetry.group.factors[index]
    basis = group.lie_algebra()
    return [ActionGenerator(symmetry, basis[m], f"{group}/{generator_name(basis[m], group.vector_dim, m)}", index)
            for m in range(basis.shape[0])]


def generator_name(xi: Tensor, dim: int | None, index: int) -> str:
    """A reader's name for a Lie-algebra element ``xi`` of rotations ``(d, d)`` or of
    Euclidean motions ``(d+1, d+1)`` (homogeneous coordinates): ``"rotate_xy"`` for the
    rotation taking the x axis towards y, ``"translate_z"`` for a translation along z
    (axes ``x, y, z`` up to 3 dimensions, ``x0, x1, …`` above); ``"generator_<index>"``
    for any other element."""
    if dim is None or xi.shape[-1] not in (dim, dim + 1):
        return f"generator_{index}"
    axes = list("xyz") if dim <= 3 else [f"x{i}" for i in range(dim)]
    sep = "" if dim <= 3 else "_"
    rot = xi[:dim, :dim]
    shift = xi[:dim, dim] if xi.shape[-1] == dim + 1 else xi.new_zeros(dim)
    moved = (rot == 1).nonzero().tolist()  # (j, i): the axis e_i turns towards e_j
    if len(moved) == 1 and not shift.any() and int((rot != 0).sum()) == 2:
        j, i = moved[0]
        return f"rotate_{axes[i]}{sep}{axes[j]}"
    along = shift.nonzero().flatten().tolist()
    if len(along) == 1 and not rot.any() and float(shift[along[0]]) == 1.0:
        return f"translate_{axes[along[0]]}"
    return f"generator_{index}"


def resolve_generators(transforms: Any, symmetry: Symmetry | None = None, *, order: int = 2,
                       padding: str = "replicate") -> list[Generator]:
    """Turn ``"rotation"``, ``"all"``, a list of names, :class:`Generator` objects or
    (with ``symmetry``) ``"all"``/``"group"`` into a list of generators."""
    if isinstance(transforms, (str, Generator)):
        transforms = [transforms]
    out: list[Generator] = []
    for t in transforms:
        if isinstance(t, Generator):
            out.append(t)
        elif isinstance(t, str) and t in ("all", "group") and symmetry is not None:
            out.extend(group_generators(symmetry))
        elif t == "all":
            out.extend(ImageGenerator(n, order, padding) for n in IMAGE_GENERATORS)
        elif isinstance(t, str):
            out.append(ImageGenerator(t, order, padding))
        else:
            raise SymmetryError(f"a transform is a name or a Generator, got {type(t).__name__}")
    return out
