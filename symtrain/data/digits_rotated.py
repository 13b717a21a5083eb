"""Rotated handwritten digits: the data of the exact-vs-approximate group CNN experiment
("Using and Abusing Equivariance", Edixhoven et al. 2023), on scikit-learn's digits.

The paper trains on rotated MNIST (28×28); offline, the real digits here are
scikit-learn's 1,797 8×8 images (:mod:`symtrain.data.digits`), upsampled bilinearly to
the side the network needs (28: exact for the pooling P4 CNN, 27: approximate) and then
rotated at that size. Rotations are counter-clockwise about the image centre, bilinear,
with the background (0 before standardisation) filling the corners, as torchvision's
``RandomRotation`` with bilinear resampling does. Multiples of 90° are exact
``torch.rot90`` (no resampling), so a C4-rotated digit is a rotated grid of the same pixels.

``rotate``: ``"none"`` (upright digits), ``"uniform"`` (each training and validation
digit rotated once by its own angle drawn uniformly from [0°, 360°): the paper's
``randomRotate``, fixed for the run) or ``"c4"`` (each by a random multiple of 90°).
The test split is upright, or rotated by ``test_angle`` degrees; :func:`angle_accuracy`
evaluates a trained model on the test split rotated by any list of angles (the paper
tests every 10°).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ShapeError, SymmetryError
from ..symmetry import Symmetry
from .digits import DIGIT_CLASSES, digits_split, upsampled_digits
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, graph_cross_entropy

ROTATE_MODES = ("none", "uniform", "c4")
#: The paper's test angles: every 10° from 0° to 350°.
TEST_ANGLES: tuple[int, ...] = tuple(range(0, 360, 10))


def rotate_images(x: Tensor, degrees: float | Tensor, background: float = 0.0) -> Tensor:
    """Rotate square images counter-clockwise about their centre.

    Args:
        x: images ``(B, C, H, W)`` with ``H == W``.
        degrees: one angle, or one per image ``(B,)``. Multiples of 90° are exact
            (``torch.rot90(x, k, dims=(-2, -1))``); other angles are resampled
            bilinearly (``grid_sample``, ``align_corners=False``).
        background: the value of empty pixels; the corners a rotation uncovers get it
            (the rotation acts on ``x − background``, padded with zeros).

    Returns:
        ``(B, C, H, W)``, same dtype and device.

    >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
    >>> torch.equal(rotate_images(x, 90), torch.rot90(x, 1, dims=(-2, -1)))
    True
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"x: expected square images (B, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    b = x.shape[0]
    angles = torch.as_tensor(degrees, dtype=torch.float64).reshape(-1)
    if angles.numel() == 1:
        angles = angles.expand(b)
    if angles.numel() != b:
        raise ShapeError(f"degrees: expected one angle or one per image ({b}), got {angles.numel()}")
    if not bool(torch.isfinite(angles).all()):
        raise SymmetryError("degrees: expected finite angles")
    quarter = torch.remainder(angles, 90.0) == 0
    out = torch.empty_like(x)
    if not bool(quarter.all()):
        idx = (~quarter).nonzero()[:, 0].to(x.device)
        rad = (angles[~quarter] * math.pi / 180).to(device=x.device, dtype=x.dtype)
        cos, sin = torch.cos(rad), torch.sin(rad)
        # output pixel p samples the input at R⁻¹p; grid_sample's y axis points down, so the
        # counter-clockwise R(θ) of the picture is [[cos, −sin], [sin, cos]] in its frame
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], -1),
                             torch.stack([sin, cos, torch.zeros_like(cos)], -1)], -2)
        part = x[idx] - background
        grid = F.affine_grid(theta, list(part.shape), align_corners=False)
        out[idx] = F.grid_sample(part, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False) + background
    if bool(quarter.any()):
        turns = torch.remainder(torch.round(angles / 90.0), 4).long()
        for k in range(4):  # at most four groups, one rot90 each
            sel = (quarter & (turns == k)).nonzero()[:, 0].to(x.device)
            if sel.numel():
                out[sel] = torch.rot90(x[sel], k, dims=(-2, -1))
    return out


def draw_angles(n: int, mode: str, generator: torch.Generator) -> Tensor:
    """``(n,)`` angles in degrees for ``rotate=mode``: zeros, uniform in [0, 360), or
    uniform over {0, 90, 180, 270}."""
    _check_mode("rotate", mode)
    if mode == "none":
        return torch.zeros(n, dtype=torch.float64)
    if mode == "uniform":
        return 360.0 * torch.rand(n, generator=generator, dtype=torch.float64)
    return 90.0 * torch.randint(0, 4, (n,), generator=generator).double()


def _check_mode(name: str, mode: str) -> None:
    if mode not in ROTATE_MODES:
        raise SymmetryError(f"{name}={mode!r}: expected one of {', '.join(ROTATE_MODES)}")


def rotated_digits(size: int = 28, rotate: str = "none", *, test_angle: float = 0.0,
                   val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                   channels: int = 1) -> tuple[dict[str, tuple[Tensor, Tensor]], float]:
    """The digits at side ``size``, training and validation splits rotated by ``rotate``,
    the test split by ``test_angle``.

    Returns:
        ``({"train", "val", "test"} → (images [n, channels, size, size], labels [n]),
        background)``: images standardised with the upright training split's pixel mean
        and standard deviation (the same numbers for every ``rotate``), and
        ``background``, the standardised value of an empty pixel (what
        :func:`rotate_images` fills uncovered corners with). The split and the angles are
        drawn from ``seed``.
    """
    _check_mode("rotate", rotate)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise SymmetryError(f"size={size!r}: expected an integer side of at least 8 (the digits are 8×8)")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise SymmetryError(f"channels={channels!r}: expected a positive integer")
    if not math.isfinite(float(test_angle)):
        raise SymmetryError(f"test_angle={test_angle!r}: expected a finite angle in degrees")
    images, labels = upsampled_digits(size)
    parts = digits_split(labels.numel(), val_fraction, test_fraction, seed)
    train = images[parts["train"]]
    mean, std = float(train.mean()), float(train.std())
    gen = torch.Generator().manual_seed(seed + 104_729)
    out = {}
    for name in ("train", "val", "test"):
        x, idx = images[parts[name]], parts[name]
        angles = torch.full((len(idx),), float(test_angle), dtype=torch.float64) if name == "test" \
            else draw_angles(len(idx), rotate, gen)
        x = (rotate_images(x, angles) - mean) / std  # background 0 before standardisation
        out[name] = (x.expand(-1, channels, -1, -1).contiguous(), labels[idx])
    return out, -mean / std


@register_dataset("digits_rotated")
def digits_rotated_task(size: int = 28, rotate: str = "none", test_angle: float = 0.0,
                        val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                        channels: int = 1) -> Task:
    """Digits for the exact-vs-approximate P4 CNN experiment (:func:`rotated_digits`):
    classification, accuracy; the symmetry is C4 on the image with invariant labels (the
    network's symmetry, not the data's: upright digits are not C4-symmetric, 6 and 9).
    ``task.info["background"]``: the standardised empty pixel, for :func:`rotate_images`."""
    splits, background = rotated_digits(size, rotate, test_angle=test_angle, val_fraction=val_fraction,
                                        test_fraction=test_fraction, seed=seed, channels=channels)
    sym = Symmetry("C4", input="image", output="trivial")
    return Task(*(TensorData(*splits[k]) for k in ("train", "val", "test")), sym, graph_cross_entropy,
                accuracy_metrics, "accuracy",
                {"num_classes": len(DIGIT_CLASSES), "in_channels": channels, "img_size": size,
                 "background": background})


@torch.no_grad()
def angle_accuracy(model: nn.Module, images: Tensor, labels: Tensor, angles: Iterable[float] = TEST_ANGLES, *,
                   background: float = 0.0, batch_size: int = 512) -> dict[float, float]:
    """Accuracy of ``model`` on ``images`` ``(B, C, H, W)`` rotated by each angle (degrees,
    counter-clockwise, :func:`rotate_images`): ``{angle: accuracy in [0, 1]}``. The model
    runs in eval mode (its mode is restored)."""
    if labels.shape != images.shape[:1]:
        raise ShapeError(f"labels: expected shape {tuple(images.shape[:1])}, got {tuple(labels.shape)}")
    was_training = model.training
    model.eval()
    try:
        out = {}
        for angle in angles:
            correct = 0
            for start in range(0, len(labels), batch_size):
                x = rotate_images(images[start:start + batch_size], float(angle), background)
                correct += int((model(x).argmax(-1) == labels[start:start + batch_size]).sum())
            out[float(angle)] = correct / len(labels)
        return out
    finally:
        model.train(was_training)
