"""Exact vs approximate group CNNs on real digits (a variant of "Using and Abusing
Equivariance", Edixhoven, Lengyel, van Gemert 2023, rotated-MNIST experiment).

Three nets of one layout (seven convolutions, two 2×2 max-poolings; :mod:`symtrain.models.p4_cnn`):

- ``exact``: the p4 CNN at 28 px, where ``input_size_check`` finds it exactly
  rot90-invariant (recipe ``gcnn_digits_exact``);
- ``approx``: the same p4 CNN at 27 px, where the first pooling drops a row and a column
  (``gcnn_digits_approx``);
- ``cnn``: a plain CNN of the same width at 28 px (``cnn_digits``);

each trained on upright digits and on uniformly rotated digits (``data.rotate``), for
``--seeds`` seeds (each seed draws the split, the training angles and the initial
weights), then tested on the test split rotated every 10° (bilinear, counter-clockwise;
multiples of 90° exact).

Printed first: ``input_size_check``'s verdict on sides 26–30 (the bench stops if the
recipes' sides disagree with it). Then the exactness error of each trained net (``input_size_check`` at its size),
a table of accuracy (%, mean ± std over seeds) at 0°, at 90°/180°/270° (their mean per
seed), and the mean over the 36 angles, beside the paper's numbers (rotated MNIST, 10
seeds, 50 epochs, 20 fields); and last ``gcnn_rotated_gap=<exact − approximate accuracy
at 90°/180°/270° after upright training, in percentage points>``. Written to a new
folder under ``--out``: ``results.json`` (every run's accuracy per angle) and
``accuracy_vs_angle.png``.

**A variant, not the paper's setting**: the data are scikit-learn's 1,797 8×8 digits
(1,258 for training) upsampled to 28/27 px, not MNIST's 60,000 28×28 digits; the
``cpu`` budget (default) trains 4 fields (16 channels for the CNN) for 300 steps of 64
(about 15 epochs) instead of 20 fields for 50 epochs of 256. ``--budget paper`` runs the
paper's optimisation (Adam lr 0.01, StepLR γ 0.5 every 10 epochs, batch 256, 50 epochs,
20 fields) on these digits: hours on a CPU.

    python bench/gcnn_pitfall.py                    # 18 runs, about 10 min with 2 workers
    python bench/gcnn_pitfall.py --budget paper     # the paper's budget (GPU recommended)
    python bench/gcnn_pitfall.py --budget paper --seeds 1 --trainings upright   # a part of it
    python bench/gcnn_pitfall.py --budget smoke --seeds 1 --angles 0 90   # seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

NETS = {"exact": "gcnn_digits_exact", "approx": "gcnn_digits_approx", "cnn": "cnn_digits"}
TRAININGS = {"upright": "none", "rotated": "uniform"}
#: The paper's numbers (rotated MNIST, 10 seeds): upright training tested at 0°, and
#: uniformly rotated training, mean over 36 test angles (%, mean ± std).
PAPER = {("exact", "upright"): (97.56, 0.18), ("approx", "upright"): (98.61, 0.07),
         ("cnn", "upright"): (98.50, 0.17), ("exact", "rotated"): (96.74, 0.12),
         ("approx", "rotated"): (96.43, 0.27), ("cnn", "rotated"): (89.36, 1.27)}
GRID = (90.0, 180.0, 270.0)


def run_one(net: str, training: str, seed: int, budget: str, overrides: list[str],
            angles: list[float]) -> dict:
    """Train one net (a recipe at ``budget``) and test it at every angle."""
    import torch

    from symtrain.data.digits_rotated import angle_accuracy
    from symtrain.metrics.grid import input_size_check
    from symtrain.train import Trainer, load_recipe
    from symtrain.train.recipes import find_recipe

    logging.getLogger("accelerate").setLevel(logging.WARNING)
    recipe = load_recipe(find_recipe(NETS[net]), [
        "train.progress=false", f"data.rotate={TRAININGS[training]}", f"train.seed={seed}", f"data.seed={seed}",
        *overrides], budget)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(recipe, out)
        metrics = trainer.fit()
    model, task = trainer.model.eval(), trainer.task
    acc = angle_accuracy(model, task.test.inputs, task.test.target, angles, background=task.info["background"])
    size = int(recipe.data.args["size"])
    scan = input_size_check(model, [size], "C4", generator=torch.Generator().manual_seed(seed))
    return {"net": net, "training": training, "seed": seed, "size": size, "params": metrics["params"],
            "accuracy": {f"{a:g}": 100 * v for a, v in acc.items()}, "exactness_error": scan.rows[0]["error"],
            "broken_by": scan.rows[0]["broken_by"], "seconds": time.perf_counter() - start}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(runs: list[dict], angles: list[float]) -> dict[tuple[str, str], dict]:
    """Per (net, training): mean ± std over seeds of accuracy at 0°, at 90/180/270° (their
    mean per seed) and over all angles; the largest exactness error."""
    out = {}
    for net in NETS:
        for training in TRAININGS:
            rs = [r for r in runs if r["net"] == net and r["training"] == training]
            if not rs:
                continue
            at = lambda r, a: r["accuracy"].get(f"{a:g}", math.nan)  # noqa: E731
            out[net, training] = {
                "at0": _stats([at(r, 0.0) for r in rs]),
                "grid": _stats([statistics.fmean(at(r, a) for a in GRID) for r in rs]),
                "mean": _stats([statistics.fmean(at(r, a) for a in angles) for r in rs]),
                "curve": [_stats([at(r, a) for r in rs]) for a in angles],
                "error": max(r["exactness_error"] for r in rs), "broken_by": rs[0]["broken_by"],
                "size": rs[0]["size"], "params": rs[0]["params"], "seeds": len(rs)}
    return out


def table(summary: dict, angles: list[float]) -> list[str]:
    """The printed table (one row per net and training)."""
    pm = lambda s: f"{s[0]:6.2f} ± {s[1]:4.2f}"  # noqa: E731
    lines = [f"{'net':<7}{'size':>5}{'params':>8}  {'training':<8}{'exactness err':>14}  {'acc 0°':>14}  "
             f"{'acc 90/180/270°':>15}  {f'mean {len(angles)} angles':>16}   paper (MNIST)"]
    for (net, training), s in summary.items():
        ref = PAPER[net, training]
        where = "0°" if training == "upright" else "36 angles"
        lines.append(f"{net:<7}{s['size']:>5}{s['params']:>8}  {training:<8}{s['error']:>14.2e}  {pm(s['at0']):>14}  "
                     f"{pm(s['grid']):>15}  {pm(s['mean']):>16}   {ref[0]:.2f} ± {ref[1]:.2f} ({where})")
    return lines


def plot(summary: dict, angles: list[float], path: Path, title: str) -> None:
    """Accuracy vs test angle, one panel per training, one line (± std band) per net."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, training in zip(axes, TRAININGS, strict=False):
        for net in NETS:
            s = summary.get((net, training))
            if s is None:
                continue
            mean = [c[0] for c in s["curve"]]
            std = [c[1] for c in s["curve"]]
            ax.plot(angles, mean, marker="o", ms=3, label=f"{net} ({s['size']} px)")
            ax.fill_between(angles, [m - d for m, d in zip(mean, std, strict=True)],
                            [m + d for m, d in zip(mean, std, strict=True)], alpha=0.2)
        ax.set_title(f"trained on {training} digits")
        ax.set_xlabel("test rotation (degrees, counter-clockwise)")
        ax.set_xticks([a for a in angles if a % 90 == 0])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sizes_checked(budget: str, overrides: list[str]) -> None:
    """Print ``input_size_check``'s verdict for sides 26–30 of an untrained p4 CNN and
    stop if the recipes' sides are not what it says (exact: exact, approx: not)."""
    import torch

    from symtrain.metrics.grid import input_size_check
    from symtrain.models.p4_cnn import p4_cnn
    from symtrain.train import load_recipe
    from symtrain.train.recipes import find_recipe

    torch.manual_seed(0)
    scan = input_size_check(p4_cnn(planes=2).eval(), range(26, 31), "C4", generator=torch.Generator().manual_seed(0))
    print(scan, flush=True)
    for net, exact in (("exact", True), ("approx", False)):
        size = int(load_recipe(find_recipe(NETS[net]), overrides, budget).data.args["size"])
        if (size in scan.exact_sizes) != exact:
            raise SystemExit(f"{NETS[net]}: data.size={size} is {'not ' if exact else ''}an exact size of the p4 "
                             f"CNN (exact: {scan.exact_sizes}); the comparison would be mislabelled")


def new_folder(root: Path) -> Path:
    """A new timestamped folder under ``root`` (never an existing one: no record is overwritten)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"--out {root}: no free folder name for {stamp}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="cpu", help="recipe preset: cpu (default), paper, smoke")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once (one thread each)")
    parser.add_argument("--angles", type=float, nargs="*", default=[float(a) for a in range(0, 360, 10)])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides applied to every recipe (e.g. train.steps=600)")
    parser.add_argument("--nets", nargs="*", choices=list(NETS), default=list(NETS))
    parser.add_argument("--trainings", nargs="*", choices=list(TRAININGS), default=list(TRAININGS))
    parser.add_argument("--out", type=Path, default=Path("runs/gcnn_pitfall"))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.workers < 1:
        parser.error("--seeds and --workers must be positive")
    if not {0.0, *GRID} <= set(args.angles):
        parser.error("--angles must include 0 90 180 270")
    sizes_checked(args.budget, args.overrides)
    out = new_folder(args.out)
    jobs = [(net, training, seed, args.budget, args.overrides, args.angles)
            for seed in range(args.seeds) for training in args.trainings for net in args.nets]
    start = time.perf_counter()
    runs = []
    if args.workers == 1:
        for job in jobs:
            runs.append(run_one(*job))
            print(f"done {runs[-1]['net']}/{runs[-1]['training']}/seed {runs[-1]['seed']}: "
                  f"{runs[-1]['accuracy']['0']:.1f} % at 0° ({runs[-1]['seconds']:.0f} s)", flush=True)
    else:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            for r in pool.map(run_one, *zip(*jobs, strict=False)):
                runs.append(r)
                print(f"done {r['net']}/{r['training']}/seed {r['seed']}: {r['accuracy']['0']:.1f} % at 0° "
                      f"({r['seconds']:.0f} s)", flush=True)
    wall = time.perf_counter() - start
    summary = summarize(runs, args.angles)
    (out / "results.json").write_text(json.dumps({"budget": args.budget, "overrides": args.overrides,
                                                  "angles": args.angles, "seconds": wall, "runs": runs}, indent=1))
    plot(summary, args.angles, out / "accuracy_vs_angle.png",
         f"Exact (28 px) vs approximate (27 px) P4 CNN vs CNN on digits; budget {args.budget}, {args.seeds} seed(s) "
         "(variant: sklearn digits, not MNIST)")
    print(f"\nVariant of Edixhoven et al.'s rotated-MNIST experiment: scikit-learn digits upsampled to 28/27 px, "
          f"budget {args.budget}, {args.seeds} seed(s), {wall:.0f} s; accuracy in % (mean ± std over seeds)")
    for (net, training), s in summary.items():
        if training == "upright":
            broken = ", ".join(s["broken_by"]) or "none"
            print(f"exactness error of {net} at {s['size']} px: {s['error']:.2e} (off-centre layers: {broken})")
    for line in table(summary, args.angles):
        print(line)
    print(f"results and plot: {out}")
    gap = (summary[("exact", "upright")]["grid"][0] - summary[("approx", "upright")]["grid"][0]
           if ("exact", "upright") in summary and ("approx", "upright") in summary else math.nan)
    print(f"gcnn_rotated_gap={gap:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
