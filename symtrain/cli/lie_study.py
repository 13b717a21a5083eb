"""``symtrain lie-study STUDY.yaml --out DIR``: the Lie-derivative study of many models."""

from __future__ import annotations

import argparse
import logging
import sys

from . import COMMANDS
from ._numbers import COUNT
from ._paths import OUTPUT_FOLDER

#: --num-cpus only means something with Ray (see symtrain.cli.unmet_needs).
NEEDS = {"num_cpus": ("--backend ray", lambda args: args.backend == "ray")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study YAML file (models, pretrained, images, generators, ...), "
                                      "or the name of a provided one (lie_deriv_paper, lie_cpu_family)")
    parser.add_argument("--out", required=True, type=OUTPUT_FOLDER,
                        help="output folder: results.csv, models/<model>.json, plots (resumable)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: one model at a time; ray: one model per Ray task (as symtrain sweep)")
    parser.add_argument("--num-cpus", type=COUNT, default=None, help="CPUs of a local Ray instance")


@COMMANDS.register("lie-study")
def run(args: argparse.Namespace) -> int:
    """Lie-derivative study of many timm models: one row per model, layer types, plots"""
    from ..scaling.lie_study import find_study, load_study, run_study

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    spec = load_study(find_study(args.study))
    rows = run_study(spec, args.out, backend=args.backend, num_cpus=args.num_cpus)
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    for r in ok:
        lee = [v for k, v in r.items() if k.startswith("lee_") and not k.endswith("_ci95")]
        acc = f"  acc {r['accuracy']:.3f}" if isinstance(r.get("accuracy"), float) else ""
        print(f"{r['model']:<32} LEE {sum(lee) / len(lee):.3g}  params {r['params']:,}{acc}")
    for r in failed:
        print(f"{r['model']:<32} failed: {r.get('error')}")
    print(f"lie_study_models={len(ok)}")
    print(f"lie_study_failed={len(failed)}")
    return 0
