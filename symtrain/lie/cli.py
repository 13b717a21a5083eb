"""``symtrain lie``: Lie-derivative report of a timm model, end to end and layer-wise.

    symtrain lie --model resnet18 --no-pretrained --synthetic 8 --transforms all \\
        --layerwise --out lie_resnet18
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="timm model name, e.g. resnet18, vit_tiny_patch16_224")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", help="local weights file, loaded through timm's pretrained path")
    weights.add_argument("--no-pretrained", action="store_true", help="random initialisation")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--images", help="directory of images (preprocessed with the model's timm transform)")
    data.add_argument("--synthetic", type=int, metavar="N", help="N smooth random images")
    parser.add_argument("--image-size", type=int, help="input size (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--transforms", default="all",
                        help="'all' or comma-separated generator names (translation_x, rotation, ...)")
    parser.add_argument("--layerwise", action="store_true", help="attribute to layers (PNG per generator)")
    parser.add_argument("--layerwise-transforms", default="translation_x,rotation",
                        help="generators for the layer-wise attribution (comma-separated)")
    parser.add_argument("--probes", type=int, default=20, help="random probes for layer-wise estimates")
    parser.add_argument("--norm", choices=("squared", "abs"), default="squared")
    parser.add_argument("--logits", action="store_true", help="differentiate logits, not softmax")
    parser.add_argument("--method", choices=("auto", "jvp", "fd"), default="auto",
                        help="forward-mode AD (jvp), central differences (fd), or auto (see resolve_method)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra timm.create_model keyword, the value read as YAML (as symtrain train --set), repeatable")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-progress", action="store_true")


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


class ImageFolderError(ValueError):
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


def run(args: argparse.Namespace) -> int:
    from ..errors import SymmetryError
    from ..overrides import ConfigError, apply_overrides
    from .report import WeightsUnavailableError, lie_report, load_timm_model

    torch.manual_seed(args.seed)
    try:
        kwargs = apply_overrides({}, args.model_arg)
    except ConfigError as err:
        print(f"symtrain lie: --model-arg: {err}", file=sys.stderr)
        return 2
    if args.image_size and "img_size" not in kwargs and args.model.startswith(("vit", "deit")):
        kwargs["img_size"] = args.image_size
    try:
        model = load_timm_model(args.model, checkpoint=args.checkpoint,
                                pretrained=not args.no_pretrained, **kwargs)
    except WeightsUnavailableError as err:
        print(f"symtrain lie: {err}", file=sys.stderr)
        return 2
    if args.synthetic is not None:
        size = args.image_size or int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
        images = synthetic_images(args.synthetic, size, seed=args.seed)
    else:
        try:
            images = load_images(args.images, model, args.image_size)
        except ImageFolderError as err:
            print(f"symtrain lie: {err}", file=sys.stderr)
            return 2
    batches = list(images.split(args.batch_size))
    transforms = "all" if args.transforms == "all" else [t.strip() for t in args.transforms.split(",") if t.strip()]
    layer_names = [t.strip() for t in args.layerwise_transforms.split(",") if t.strip()]
    try:
        report = lie_report(model, batches, transforms, probabilities=not args.logits,
                            layerwise=args.layerwise, layerwise_transforms=layer_names,
                            probes=args.probes, norm=args.norm, progress=not args.no_progress,
                            generator=torch.Generator().manual_seed(args.seed), out_dir=args.out,
                            method=args.method)
    except SymmetryError as err:
        print(f"symtrain lie: {err}", file=sys.stderr)
        return 2
    report.meta.update(model=args.model, checkpoint=args.checkpoint, pretrained=not args.no_pretrained)
    report.save(args.out)
    key = f"{args.norm}_mean"
    width = max(len(r["generator"]) for r in report.summary)
    print(f"Lie derivative of {args.model} over {report.meta['examples']} images "
          f"({'softmax' if not args.logits else 'logits'}, {args.norm} norm, translation in pixels)")
    for row in report.summary:
        print(f"  {row['generator']:<{width}}  {row[key]:.4g} ± {row[f'{args.norm}_sem']:.2g}")
    if report.layerwise:
        for gen in dict.fromkeys(r["generator"] for r in report.layerwise):
            rows = [r for r in report.layerwise if r["generator"] == gen and r["layer"] != "(residual)"]
            top = max(rows, key=lambda r: abs(r["contribution"]))
            print(f"  layer-wise {gen}: largest contribution from {top['layer']} ({top['contribution']:.3g})")
    print(f"wrote {args.out}")
    return 0
