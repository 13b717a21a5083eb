"""Images for a Lie-derivative report: smooth synthetic ones (:func:`synthetic_images`)
or a folder read through a timm model's evaluation transform (:func:`load_images`)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import SymmetryError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def synthetic_images(n: int, size: int, *, seed: int = 0) -> torch.Tensor:
    """``(N, 3, S, S)`` smooth random images, standardised: white noise blurred by a
    Gaussian of width S/32 (the spectrum of natural images falls off; white noise would
    make every model look non-equivariant)."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, size, size, generator=gen)
    sigma = max(size / 32, 0.8)
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(noise.dtype)
    img = F.conv2d(F.pad(noise, (r, r, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    img = F.conv2d(F.pad(img, (0, 0, r, r), mode="reflect"), k.reshape(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return (img - img.mean((1, 2, 3), keepdim=True)) / img.std((1, 2, 3), keepdim=True)


class ImageFolderError(SymmetryError):
    """A ``--images`` folder that cannot be read: missing, without images, or holding a
    file that is not a readable image."""


def load_images(directory: str, model: torch.nn.Module, size: int | None) -> torch.Tensor:
    """Images of ``directory`` through the model's timm evaluation transform; raises
    :class:`ImageFolderError` naming the folder or the bad file."""
    from PIL import Image, UnidentifiedImageError
    from timm.data import create_transform, resolve_data_config

    folder = Path(directory)
    if not folder.is_dir():
        raise ImageFolderError(f"--images {directory!r} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageFolderError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory!r}")
    override = {"input_size": (3, size, size)} if size else {}
    transform = create_transform(**resolve_data_config(override, model=model))
    images = []
    for path in files:
        try:
            with Image.open(path) as img:
                images.append(transform(img.convert("RGB")))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageFolderError(f"{path} is not a readable image ({type(err).__name__}: {err})") from None
    return torch.stack(images)
