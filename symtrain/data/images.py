"""A locally generated image classification task, for pretraining vision transformers
on this machine (no downloads): procedurally drawn shapes at random positions, sizes,
orientations and colours, with pixel noise.

Classes: 0 disk, 1 ring, 2 square, 3 triangle, 4 cross, 5 striped disk.
"""

from __future__ import annotations

import torch
from torch import Tensor

SHAPE_CLASSES: tuple[str, ...] = ("disk", "ring", "square", "triangle", "cross", "striped disk")


def shapes_dataset(num_images: int, *, size: int = 64, noise: float = 0.1,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``(images [num_images, 3, size, size] float32, labels [num_images] long)``.

    Images are roughly standardised (zero mean, unit scale), like normalised photographs.
    Deterministic for a seeded ``generator``."""
    g = generator
    n = num_images
    labels = torch.randint(len(SHAPE_CLASSES), (n,), generator=g)
    lin = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    centre = (torch.rand(n, 2, generator=g) - 0.5) * 0.8
    radius = 0.25 + 0.35 * torch.rand(n, generator=g)
    angle = torch.rand(n, generator=g) * torch.pi
    dx = (xx[None] - centre[:, 0, None, None]) / radius[:, None, None]
    dy = (yy[None] - centre[:, 1, None, None]) / radius[:, None, None]
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = c * dx + s * dy, -s * dx + c * dy
    r2 = u ** 2 + v ** 2
    masks = torch.stack([
        r2 < 1,
        (r2 < 1) & (r2 > 0.45),
        torch.maximum(u.abs(), v.abs()) < 0.8,
        (v > -0.5) & (v < 1) & (u.abs() < 0.58 * (1 - v)),
        ((u.abs() < 0.25) & (v.abs() < 1)) | ((v.abs() < 0.25) & (u.abs() < 1)),
        (r2 < 1) & (torch.sin(5 * u) > 0),
    ], 1)  # [n, classes, H, W]
    shape = masks[torch.arange(n), labels].float()[:, None]
    fg = torch.rand(n, 3, 1, 1, generator=g)
    bg = torch.rand(n, 3, 1, 1, generator=g)
    # keep the shape visible: push foreground and background apart in brightness
    fg = torch.where(fg.mean(1, keepdim=True) > bg.mean(1, keepdim=True), fg * 0.5 + 0.5, fg * 0.5)
    images = shape * fg + (1 - shape) * bg
    images = images + noise * torch.randn(images.shape, generator=g)
    return ((images - 0.5) / 0.25).float(), labels
