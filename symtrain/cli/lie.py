"""``symtrain lie``: Lie-derivative report of a timm model, end to end and layer-wise.

    symtrain lie --model resnet18 --no-pretrained --synthetic 8 --transforms all \\
        --layerwise --out lie_resnet18
"""

from __future__ import annotations

import argparse
import sys

from . import COMMANDS
from ._numbers import COUNT, SEED
from ._paths import INPUT_FILE, INPUT_FOLDER, OUTPUT_FOLDER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="timm model name, e.g. resnet18, vit_tiny_patch16_224")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", type=INPUT_FILE,
                         help="local weights file, loaded through timm's pretrained path")
    weights.add_argument("--no-pretrained", action="store_true", help="random initialisation")
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--images", type=INPUT_FOLDER,
                      help="directory of images (preprocessed with the model's timm transform)")
    data.add_argument("--synthetic", type=COUNT, metavar="N", help="N smooth random images")
    parser.add_argument("--image-size", type=COUNT, help="input size (default: the model's)")
    parser.add_argument("--batch-size", type=COUNT, default=8)
    parser.add_argument("--transforms", default="all",
                        help="'all' or comma-separated generator names (translation_x, rotation, ...)")
    parser.add_argument("--layerwise", action="store_true", help="attribute to layers (PNG per generator)")
    parser.add_argument("--layerwise-transforms", default=None,
                        help="generators for the layer-wise attribution (comma-separated; default "
                             "translation_x,rotation; needs --layerwise)")
    parser.add_argument("--probes", type=COUNT, default=None,
                        help="random probes for layer-wise estimates (default 20; needs --layerwise)")
    parser.add_argument("--norm", choices=("squared", "abs"), default="squared")
    parser.add_argument("--logits", action="store_true", help="differentiate logits, not softmax")
    parser.add_argument("--method", choices=("auto", "jvp", "fd"), default="auto",
                        help="forward-mode AD (jvp), central differences (fd), or auto (see resolve_method)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="extra timm.create_model keyword, the value read as YAML (as symtrain train --set), "
                             "repeatable")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--out", required=True, type=OUTPUT_FOLDER, help="output directory")
    parser.add_argument("--no-progress", action="store_true")


#: Layer-wise options mean nothing without --layerwise (see symtrain.cli.unmet_needs).
NEEDS = {dest: ("--layerwise", lambda args: args.layerwise) for dest in ("layerwise_transforms", "probes")}


@COMMANDS.register("lie")
def run(args: argparse.Namespace) -> int:
    """Lie-derivative report of a timm model (end to end and layer-wise)"""
    import torch

    from ..errors import SymmetryError
    from ..lie.images import ImageFolderError, load_images, synthetic_images
    from ..lie.report import WeightsUnavailableError, lie_report, load_timm_model
    from ..overrides import ConfigError, apply_overrides

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
    layer_names = [t.strip() for t in (args.layerwise_transforms or "translation_x,rotation").split(",") if t.strip()]
    try:
        report = lie_report(model, batches, transforms, probabilities=not args.logits,
                            layerwise=args.layerwise, layerwise_transforms=layer_names,
                            probes=args.probes or 20, norm=args.norm, progress=not args.no_progress,
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
