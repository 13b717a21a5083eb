"""The rotated-MNIST P4 CNN of "Using and Abusing Equivariance" (Edixhoven, Lengyel,
van Gemert 2023) and a plain CNN of the same layout, in plain torch.

The p4 layers are written here rather than with escnn: a p4 group convolution is a
plain ``conv2d`` whose filter bank holds the four rot90-rotated copies of each filter
(with the input's group axis cyclically shifted), which is exact, needs no optional
dependency, and keeps the layers ordinary ``nn.Conv2d`` / ``nn.MaxPool2d`` modules that
:func:`~symtrain.metrics.grid.sampling_offsets` and
:func:`~symtrain.metrics.grid.input_size_check` read (kernel, stride, padding).

Feature maps are ``(B, C·4, H, W)``: ``C`` regular fields of C4, field-major (channel
``4·c + r`` holds rotation ``r·90°`` of field ``c``), the layout of
``Image(fiber="regular")`` and of escnn. C4 acts on them by rotating the plane
counter-clockwise (``torch.rot90(x, 1, dims=(-2, -1))``) and cyclically shifting each
field's four channels (``(g·f)(h) = f(g⁻¹h)``).

Layout (7 convolutions of 3×3, padding 1, except the last, 4×4 without padding; batch
norm and ReLU after each; 2×2 max-pooling after the second and third)::

    28 ─conv1─conv2─ 28 ─pool─ 14 ─conv3─ 14 ─pool─ 7 ─conv4─conv5─conv6─ 7 ─conv7─ 4
       ─ spatial mean ─ (p4: max over the four rotations) ─ linear ─ logits

2×2 max-pooling with stride 2 keeps the sampled grid centred only on even sizes, so the
p4 net is exactly rot90-invariant when the input side is ≡ 0 (mod 4) (28: exact) and
only approximately otherwise (27, 29: the first pooling drops a row and a column).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model

#: The order of the rotation group: four rotations by multiples of 90°.
ROTATIONS = 4


class P4LiftConv(nn.Conv2d):
    """Lifting convolution Z² → p4: ``in_channels`` scalar channels to ``out_fields``
    regular fields (``(B, Cin, H, W)`` → ``(B, out_fields·4, H', W')``).

    Output channel ``4·o + r`` is the cross-correlation of the input with filter ``o``
    rotated by ``r·90°`` counter-clockwise. The weight is that of
    ``nn.Conv2d(in_channels, out_fields, k)``; ``stride``/``padding`` as there."""

    def __init__(self, in_channels: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(in_channels, out_fields, kernel_size, stride=stride, padding=padding, bias=bias)
        self.out_fields = out_fields

    def filters(self) -> tuple[Tensor, Tensor | None]:
        """The expanded bank ``(out_fields·4, in_channels, k, k)`` and bias ``(out_fields·4,)``."""
        w = torch.stack([torch.rot90(self.weight, r, (-2, -1)) for r in range(ROTATIONS)], 1)
        bias = None if self.bias is None else self.bias.repeat_interleave(ROTATIONS)
        return w.flatten(0, 1), bias

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.filters()
        return F.conv2d(x, w, b, self.stride, self.padding)


class P4GroupConv(nn.Conv2d):
    """Group convolution p4 → p4: ``in_fields`` regular fields to ``out_fields``
    (``(B, in_fields·4, H, W)`` → ``(B, out_fields·4, H', W')``).

    The filter of output rotation ``r`` is the base filter rotated by ``r·90°`` with its
    input group axis cyclically shifted by ``r``: ``w_r[o, i, s] = rot_r(w[o, i, s − r])``.
    The weight is that of ``nn.Conv2d(in_fields·4, out_fields, k)``."""

    def __init__(self, in_fields: int, out_fields: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__(in_fields * ROTATIONS, out_fields, kernel_size, stride=stride, padding=padding,
                         bias=bias)
        self.in_fields, self.out_fields = in_fields, out_fields

    def filters(self) -> tuple[Tensor, Tensor | None]:
        """The expanded bank ``(out_fields·4, in_fields·4, k, k)`` and bias."""
        o, _, k1, k2 = self.weight.shape
        w = self.weight.reshape(o, self.in_fields, ROTATIONS, k1, k2)
        bank = torch.stack([torch.rot90(torch.roll(w, r, 2), r, (-2, -1)) for r in range(ROTATIONS)], 1)
        bias = None if self.bias is None else self.bias.repeat_interleave(ROTATIONS)
        return bank.reshape(o * ROTATIONS, self.in_fields * ROTATIONS, k1, k2), bias

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.filters()
        return F.conv2d(x, w, b, self.stride, self.padding)


class P4BatchNorm(nn.BatchNorm3d):
    """Batch norm of regular fields: one mean, variance, scale and shift per field, shared
    by its four rotations (so it commutes with the cyclic shift)."""

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        return super().forward(x.reshape(b, c // ROTATIONS, ROTATIONS, h, w)).reshape(b, c, h, w)


class PoolingCNN(nn.Module):
    """The paper's seven-convolution net with 2×2 max-pooling, as a p4 group CNN
    (``group=True``: ``width`` regular fields per layer, ``4·width`` channels) or a plain
    CNN (``width`` channels per layer).

    Input ``(B, in_channels, H, W)``; output logits ``(B, num_classes)``. ``H = W ≥ 16``
    (the last convolution needs a 4×4 map after two poolings)."""

    def __init__(self, in_channels: int, width: int, num_classes: int, *, group: bool):
        super().__init__()
        _check_positive(in_channels=in_channels, width=width, num_classes=num_classes)
        self.group = group
        if group:
            convs = [P4LiftConv(in_channels, width, 3, padding=1)]
            convs += [P4GroupConv(width, width, 3, padding=1) for _ in range(5)]
            convs += [P4GroupConv(width, width, 4)]
            norms = [P4BatchNorm(width) for _ in range(7)]
        else:
            convs = [nn.Conv2d(in_channels, width, 3, padding=1)]
            convs += [nn.Conv2d(width, width, 3, padding=1) for _ in range(5)]
            convs += [nn.Conv2d(width, width, 4)]
            norms = [nn.BatchNorm2d(width) for _ in range(7)]
        for i, (conv, norm) in enumerate(zip(convs, norms, strict=False), 1):  # registered in forward order
            self.add_module(f"conv{i}", conv)
            self.add_module(f"bn{i}", norm)
            if i in (2, 3):
                self.add_module(f"pool{i - 1}", nn.MaxPool2d(2))
        self.fc = nn.Linear(width, num_classes)
        for conv in convs:  # He initialisation over the true fan-in (channels × rotations × k²)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def _block(self, i: int, x: Tensor) -> Tensor:
        return F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ValueError(f"x: expected images (B, C, H, W) with H, W >= 16, got shape {tuple(x.shape)}")
        x = self._block(2, self._block(1, x))
        x = self._block(3, self.pool1(x))
        x = self.pool2(x)
        for i in (4, 5, 6, 7):
            x = self._block(i, x)
        x = x.mean((-2, -1))  # (B, C) or (B, fields·4)
        if self.group:  # invariant: the largest response over the four rotations of each field
            x = x.reshape(x.shape[0], -1, ROTATIONS).amax(-1)
        return self.fc(x)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")


@register_model("p4_cnn")
def p4_cnn(in_channels: int = 1, planes: int = 20, num_classes: int = 10) -> nn.Module:
    """The rotated-MNIST p4 CNN of Edixhoven et al. (:class:`PoolingCNN` with
    ``group=True``): ``planes`` regular fields per layer (``4·planes`` channels; the
    paper's default is 20). Exactly rot90-invariant at input sides ≡ 0 (mod 4)."""
    _check_positive(planes=planes)
    return PoolingCNN(in_channels, planes, num_classes, group=True)


@register_model("cnn")
def cnn(in_channels: int = 1, channels: int = 80, num_classes: int = 10) -> nn.Module:
    """The same net as :func:`p4_cnn` with ordinary convolutions: ``channels`` per layer.
    ``channels = 4·planes`` gives every layer as many channels as the p4 net's (same
    width; about 4× its parameters); ``2·planes`` about matches its parameters."""
    _check_positive(channels=channels)
    return PoolingCNN(in_channels, channels, num_classes, group=False)


__all__ = ["P4LiftConv", "P4GroupConv", "P4BatchNorm", "PoolingCNN", "p4_cnn", "cnn", "ROTATIONS"]
