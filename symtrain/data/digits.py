"""Real handwritten digits for pretraining vision transformers offline.

scikit-learn's ``load_digits`` (the UCI optical-recognition digits): 1,797 real 8×8
grayscale images of the digits 0–9 written by 43 people, shipped inside the
scikit-learn wheel, so nothing is downloaded. Install with the ``digits`` extra
(``pip install symtrain[digits]``).

:func:`digits_dataset` upsamples them to a ViT's input size, repeats the gray channel
to ``channels``, standardises with the training split's mean and standard deviation,
and splits them into train / val / test by a seeded permutation. Registered as the
``digits`` dataset (recipe ``pretrain_vit_digits``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._optional import import_optional
from ..symmetry import Symmetry
from .registry import register_dataset
from .task import Task, TensorData, accuracy_metrics, graph_cross_entropy

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
NUM_DIGITS = 1797


def _load_digits() -> tuple[Tensor, Tensor]:
    """``(images [1797, 8, 8] float in [0, 16], labels [1797] long)`` from scikit-learn."""
    datasets = import_optional("sklearn.datasets", "The digits dataset", "digits", "  (installs scikit-learn)")
    bunch = datasets.load_digits()
    return (torch.as_tensor(bunch.images, dtype=torch.float32),
            torch.as_tensor(bunch.target, dtype=torch.long))


def digits_dataset(size: int = 32, *, val_fraction: float = 0.1, test_fraction: float = 0.2,
                   seed: int = 0, channels: int = 3) -> dict[str, tuple[Tensor, Tensor]]:
    """The 1,797 digits as ``{"train", "val", "test"}`` → ``(images, labels)``.

    Args:
        size: side of the output images; the 8×8 digits are upsampled bilinearly
            (``size=8`` keeps them as they are).
        val_fraction, test_fraction: held-out shares (each at least one image); the
            rest is the training split.
        seed: seed of the split's permutation (the images themselves are fixed).
        channels: the gray channel is repeated this many times (3 for ImageNet-style ViTs).

    Returns:
        ``images [n, channels, size, size]`` float32, standardised with the training
        split's pixel mean and standard deviation, and ``labels [n]`` long in 0..9. The
        three splits are disjoint and cover all 1,797 images; the same arguments give the
        same tensors.
    """
    if size < 1 or channels < 1:
        raise ValueError(f"size and channels must be positive, got size={size}, channels={channels}")
    images, labels = upsampled_digits(size)
    parts = digits_split(labels.numel(), val_fraction, test_fraction, seed)
    train = images[parts["train"]]
    mean, std = train.mean(), train.std()
    images = ((images - mean) / std).expand(-1, channels, -1, -1)
    return {name: (images[idx].contiguous(), labels[idx]) for name, idx in parts.items()}


def upsampled_digits(size: int) -> tuple[Tensor, Tensor]:
    """All 1,797 digits as ``(images [n, 1, size, size] in [0, 1], labels [n])``: the 8×8
    originals scaled to [0, 1] and upsampled bilinearly (``size=8``: as they are). The
    background is 0."""
    images, labels = _load_digits()
    images = images[:, None] / 16.0  # [n, 1, 8, 8] in [0, 1]
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images, labels


def digits_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, Tensor]:
    """``{"train", "val", "test"}`` → indices of a seeded permutation of ``range(n)`` (the
    split :func:`digits_dataset` uses)."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be in (0, 1) and sum below 1, "
                         f"got {val_fraction} and {test_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val, n_test = max(1, round(n * val_fraction)), max(1, round(n * test_fraction))
    return {"train": order[n_val + n_test:], "val": order[:n_val], "test": order[n_val:n_val + n_test]}


@register_dataset("digits")
def digits_task(size: int = 32, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                channels: int = 3) -> Task:
    """Real handwritten digits (:func:`digits_dataset`) for pretraining ViTs offline; the
    test split is the held-out accuracy. The symmetry is D4 on the image, but the digits
    are *not* invariant to it (6 and 9, mirror images): the equivariance error reported
    for this task measures how orientation-sensitive the classifier is, not a defect."""
    splits = digits_dataset(size, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                            channels=channels)
    sym = Symmetry("D4", input="image", output="trivial")
    return Task(*(TensorData(*splits[k]) for k in ("train", "val", "test")), sym, graph_cross_entropy,
                accuracy_metrics, "accuracy",
                {"num_classes": len(DIGIT_CLASSES), "img_size": size, "in_chans": channels})
