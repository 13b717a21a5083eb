"""C_n, D_n and SO(2) interfaces for images: a small steerable CNN built with escnn
(imported lazily, on construction).

- C_n / D_n: the CNN ends in one regular field; its spatial mean is one logit per
  group element, permuted by the group like the elements themselves. The hard element
  is the argmax; the soft part is ``softmax(logits / τ)`` (the wrapper's
  straight-through term applies ``Σ_j π_j e_j⁻¹·x``).
- SO(2): the CNN ends in one frequency-1 field; its spatial mean is a 2-vector ``v``
  rotating with the image, and the element is the rotation taking the x-axis to ``v``.

Noise: a Gaussian scalar field ``[B, 1, H, W]`` (acted on by
:class:`~symtrain.actions.Image`), an extra input channel.

escnn's own labelling of group elements (its rotation direction and reflection axis)
is matched to symtrain's by transforming a probe image both ways at construction, so
the elements returned follow symtrain's conventions (:mod:`symtrain.actions.image`).
Only grid-exact transformations (multiples of 90°) are exactly equivariant.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...actions.registry import create_action
from ...domains import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Count, check_args
from ...errors import ShapeError, SymmetryError, UnsupportedGroupError
from ...groups.base import Group, GroupContext
from ...groups.planar import rotation_matrix_2d
from .base import Interface, RelaxedElement
from .registry import register_interface


def _planar(group: Group) -> bool:
    return (len(group.factors) == 1 and group.vector_dim == 2 and not group.has_translations
            and not group.permutes_nodes and (group.is_finite or group.is_proper))


def _gspace(group: Group, max_frequency: int):
    """escnn's gspace of a planar group: C_n (finite, proper), D_n (finite, with the
    reflection (x, y) -> (x, -y)) or SO(2) (continuous, proper)."""
    from ..._escnn import ensure_escnn

    ensure_escnn()
    from escnn import gspaces

    if not _planar(group):
        raise SymmetryError(f"ImageInterface supports C_n, D_n and SO2, not {group}")
    if group.is_finite and group.is_proper:
        return gspaces.rot2dOnR2(N=group.order)
    if group.is_finite:
        return gspaces.flipRot2dOnR2(N=group.order // 2, axis=0.0)
    return gspaces.rot2dOnR2(N=-1, maximum_frequency=max_frequency)


@register_interface("image")
class ImageInterface(Interface):
    """Equivariant interface for planar groups acting on images ``[B, C, H, W]``.

    Args:
        group: ``"C4"``, ``"D4"``, ``"C8"``, ``"SO2"``, ...
        in_channels: image channels ``C``.
        hidden: fields per hidden layer; layers: number of convolutions.
        kernel_size: convolution size (odd; padding keeps the image size).
        tau: softmax temperature of the soft distribution (finite groups).
        entropy_weight: weight of the entropy of that distribution (auxiliary loss).
    """

    @check_args(in_channels=POSITIVE_INT, hidden=POSITIVE_INT, layers=POSITIVE_INT, kernel_size=POSITIVE_INT,
                tau=POSITIVE,
                entropy_weight=NON_NEGATIVE, max_frequency=Count(0))
    def __init__(self, group: str | Group = "C4", in_channels: int = 1, hidden: int = 4,
                 layers: int = 3, kernel_size: int = 3, tau: float = 1.0,
                 entropy_weight: float = 0.0, max_frequency: int = 2):
        super().__init__(group)
        from ..._escnn import ensure_escnn

        ensure_escnn()
        from escnn import nn as enn

        if len(self.group.factors) != 1:
            raise SymmetryError(f"ImageInterface is for one planar group, got {self.group}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels, self.tau, self.entropy_weight = in_channels, tau, entropy_weight
        self.finite = self.group.is_finite
        gs = _gspace(self.group, max_frequency)
        self.noise_action = create_action("image", None if self.group.acts_on_grid else "bilinear")
        in_type = enn.FieldType(gs, [gs.trivial_repr] * (in_channels + 1))
        if self.finite:
            hid = enn.FieldType(gs, [gs.regular_repr] * hidden)
            out = enn.FieldType(gs, [gs.regular_repr])
        else:
            hid = enn.FieldType(gs, [gs.irrep(0)] * hidden + [gs.irrep(1)] * hidden)
            out = enn.FieldType(gs, [gs.irrep(1)])
        modules, t = [], in_type
        for _ in range(layers - 1):
            modules.append(enn.R2Conv(t, hid, kernel_size, padding=kernel_size // 2))
            modules.append(enn.ReLU(hid) if self.finite else enn.NormNonLinearity(hid, "n_sigmoid"))
            t = hid
        # A 1×1 head: the spatial mean of a frequency-1 field made by a wider (derivative-
        # like) kernel from scalars is ~0; from the nonlinear hidden fields it is not.
        modules.append(enn.R2Conv(t, out, 1))
        self.in_type = in_type
        self.net = enn.SequentialModule(*modules)
        if self.finite:
            self.register_buffer("channel_to_element", self._match_elements(gs), persistent=False)

    def extra_repr(self) -> str:
        return (f"group={self.group}, in_channels={self.in_channels}, tau={self.tau}, "
                f"entropy_weight={self.entropy_weight}")

    def _match_elements(self, gs) -> Tensor:
        """For each regular-field channel (escnn element), the index of the same
        transformation among ``self.group.elements()``."""
        from escnn import nn as enn

        gen = torch.Generator().manual_seed(0)
        probe = torch.rand(1, 1, 9, 9, generator=gen)
        ftype = enn.FieldType(gs, [gs.trivial_repr])
        ours = self.group.elements()
        m = ours.shape[0]
        theirs_imgs = torch.cat([enn.GeometricTensor(probe, ftype).transform(e).tensor
                                 for e in gs.fibergroup.elements])             # [m, 1, 9, 9]
        action = create_action("image", None if self.group.acts_on_grid else "bilinear")
        ours_imgs = action.act(self.group, ours, probe.expand(m, -1, -1, -1))
        dist = (theirs_imgs[:, None] - ours_imgs[None]).flatten(2).norm(dim=-1)  # [m, m]
        index = dist.argmin(1)
        if index.unique().numel() != m:
            raise SymmetryError(f"could not match escnn's elements of {self.group} to symtrain's")
        return index

    @classmethod
    def supports(cls, group):
        return _planar(group) and group.is_finite

    @classmethod
    def infer_args(cls, symmetry, example):
        img = symmetry.input.pixels(example)
        return {} if img is None else {"in_channels": img.shape[1]}

    def attach(self, symmetry):
        super().attach(symmetry)
        try:  # noise moves like a one-channel image of the input's kind
            self.noise_action = symmetry.input.scalar_field()
        except UnsupportedGroupError:
            pass  # e.g. a Fields input: keep the image action built for the group
        return self

    def _image(self, x: Any) -> Tensor:
        img = self._action().pixels(x)
        if img is None:
            raise ShapeError("ImageInterface needs an Image field in the input")
        return img

    def sample_noise(self, x: Any, context: GroupContext, scale: float,
                     generator: torch.Generator | None = None) -> Tensor:
        img = self._image(x)
        b, _, h, w = img.shape
        return scale * torch.randn(b, 1, h, w, generator=generator, device=img.device, dtype=img.dtype)

    def relaxed(self, x: Any, noise: Tensor, context: GroupContext | None = None,
                soft: bool = False) -> RelaxedElement:
        from escnn import nn as enn

        img = self._image(x)
        if img.shape[1] != self.in_channels:
            raise ShapeError(f"ImageInterface(in_channels={self.in_channels}) got {img.shape[1]} channels")
        if noise.shape != (img.shape[0], 1) + tuple(img.shape[2:]):
            raise ShapeError(f"noise must have shape {(img.shape[0], 1) + tuple(img.shape[2:])}, "
                             f"got {tuple(noise.shape)}")
        inp = enn.GeometricTensor(torch.cat([img, noise.to(img.dtype)], 1), self.in_type)
        out = self.net(inp).tensor.mean((-2, -1))                                     # [B, |G|] or [B, 2]
        if bool(torch.isnan(out).any()):
            raise SymmetryError("the image interface produced NaN (NaN in the input or diverged weights)")
        if not self.finite:
            angle = torch.atan2(out[:, 1], out[:, 0])
            return RelaxedElement(rotation_matrix_2d(angle), (None,), out.new_zeros(()))
        logits = torch.empty_like(out).index_copy_(1, self.channel_to_element, out)  # our order
        element = self.group.elements(device=out.device)[logits.argmax(1)]
        if not soft:
            return RelaxedElement(element, (None,), out.new_zeros(()))
        probs = torch.softmax(logits / self.tau, 1)
        entropy = -torch.special.xlogy(probs, probs).sum(1).mean()
        return RelaxedElement(element, (probs,), self.entropy_weight * entropy)
