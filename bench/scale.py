"""Does symmetrization matter at scale? A CPU-scale sweep on the MuJoCo rigid-body task
(issue 10; after Brehmer et al., "Does equivariance matter at scale?", 2024).

Two sweeps, each point an ordinary ``symtrain train`` run of a provided recipe
(:func:`symtrain.scaling.runs.train_point`), resumable (``results.csv``):

- **compute**: plain transformer + augmentation (``rigid_augment``), frame averaging
  (``rigid_fa``, 8 PCA sign flips) and LPS (``rigid_ps``, 2 train samples) × model size
  ``xs, s, m`` (1.0e4, 3.9e4, 1.5e5 parameters) × steps, on 2048 scenes, batch 32. The
  step grids cover the same training compute for every method: a frame-averaging step
  costs 8 augmentation steps and an LPS step about 4, so augmentation runs
  ``300, 600, 1200, 2400`` steps, LPS ``150, 300, 600`` and frame averaging ``75, 150, 300``
  (1.3e10 to 1.6e12 FLOPs in all);
- **data**: plain, plain + augmentation and frame averaging, size ``s``, at 4 epochs on
  128, 512 and 2048 scenes (16, 64, 256 steps), and at 16 and 64 epochs on 512 scenes
  (256, 1024 steps): loss vs data at fixed epochs, and loss vs epochs at fixed data (the
  paper's first finding: does augmentation close the gap given enough epochs?).

Scenes are simulated once (2048 training, 256 validation, 256 test; the smaller training
sets are the first scenes of the larger one).

Then :func:`symtrain.scaling.fit.fit_results` fits the compute frontier ``L(C) = a·C^(−b)``,
``N_opt(C)``, loss vs data and vs epochs per method, with 68 % bootstrap intervals (200
resamples of the runs), and writes ``fits.json`` and PNG plots next to each
``results.csv``. Printed: a table of the runs, the fitted exponents, the fitted losses
and their ratios at the largest compute every method's frontier reaches, and last
``scale_fa_vs_aug=<L(plain + augmentation) / L(frame averaging) at that compute>`` (> 1:
frame averaging is better at equal training compute), after ``scale_mfa_vs_aug=``, the
same for minimal frame averaging (``rigid_mfa``: one QR frame element, one backbone
call per scene, so it runs augmentation's step grid ``300 … 2400``). ``--methods augment
mfa`` runs those two arms alone (no data sweep).

    python bench/scale.py                  # 19 min on 2 quiet cores (measured below)
    python bench/scale.py --smoke          # seconds: tiny data, 1-2 steps (the test runs this)
    python bench/scale.py --backend ray    # points as Ray tasks, two at a time on 2 local CPUs

Time: 1137 s (19 min) for the 45 runs, simulation cached, on this 2-core machine when quiet
(one thread per run; seconds per training step at batch 32, evaluation included:
augmentation 0.025 / 0.023 / 0.030, frame averaging 0.08 / 0.11 / 0.19, LPS 0.08 / 0.08 /
0.10 for xs / s / m); simulating the 2560 scenes the first time adds 1–3 min. At load 4 expect about
twice that. ``--backend ray`` runs two points at a time.

Result of that run (README, "What bench/scale.py found"): ``scale_fa_vs_aug=1.066``.

Training compute counts forward and backward FLOPs of the real step (all copies of the
averaging methods; :mod:`symtrain.metrics.flops`); the test loss is the task's MSE per
keypoint slot (m², :func:`symtrain.data.rigid.rigid_task`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from symtrain.data.rigid import make_rigid_dataset
from symtrain.scaling.fit import fit_results, read_results, summarize
from symtrain.scaling.runs import train_point
from symtrain.scaling.sweep import expand, run_sweep

COMPUTE_METHODS = {"augment": "rigid_augment", "fa": "rigid_fa", "ps": "rigid_ps", "mfa": "rigid_mfa"}
DATA_METHODS = {"plain": "rigid_plain", "augment": "rigid_augment", "fa": "rigid_fa"}


def settings(smoke: bool, threads: int) -> dict:
    """Recipe keys shared by every point (``--set`` overrides of the recipes' cpu budget)."""
    common = {"budget": "cpu", "train.threads": threads, "train.eval_every": 10**9,
              "train.checkpoint_every": 10**9, "symmetrization.equivariance_inputs": 8}
    if smoke:
        return {**common, "data.batch_size": 8, "data.eval_batch_size": 16, "data.val": 16, "data.test": 16,
                "data.workers": 1, "data.progress": False, "optim.warmup_steps": 0,
                "train.log_every": 1}
    return {**common, "data.batch_size": 32, "data.eval_batch_size": 256, "data.val": 256, "data.test": 256,
            "optim.warmup_steps": 20, "optim.lr": 2.0e-3, "train.log_every": 20}


def ps_settings(smoke: bool) -> dict:
    """LPS samples and interface width: cheap enough for the CPU sweep."""
    return {"symmetrization.samples": 2, "symmetrization.eval_samples": 2 if smoke else 4,
            "symmetrization.test_samples": 2 if smoke else 8,
            "symmetrization.interface": {"name": "RotationInterface", "hidden": 8 if smoke else 16,
                                         "layers": 1 if smoke else 2, "knn": 4}}


def compute_sweep(smoke: bool = False, threads: int = 1, methods=None) -> dict:
    """The compute sweep: method × model size × steps at one dataset size (``methods``:
    labels of :data:`COMPUTE_METHODS`, default all)."""
    # smoke: one size, and step counts whose compute ranges overlap (fa costs 8 steps of augment;
    # minimal frames one backbone call, like augmentation)
    sizes, data = (["xs"], 32) if smoke else (["xs", "s", "m"], 2048)
    steps = {"augment": [4, 16], "fa": [1, 2], "ps": [2, 4], "mfa": [4, 16]} if smoke else \
        {"augment": [300, 600, 1200, 2400], "fa": [75, 150, 300], "ps": [150, 300, 600],
         "mfa": [300, 600, 1200, 2400]}
    unknown = set(methods or ()) - set(COMPUTE_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {sorted(COMPUTE_METHODS)}")
    grids = []
    for label, recipe in COMPUTE_METHODS.items():
        if methods and label not in methods:
            continue
        extra = ps_settings(smoke) if label == "ps" else {}
        grids.append({"recipe": recipe, "label": label, "model.size": sizes, "train.steps": steps[label],
                      **{k: [v] for k, v in extra.items()}})
    return {"base": {**settings(smoke, threads), "data.train": data}, "grids": grids}


def data_sweep(smoke: bool = False, threads: int = 1, epochs: int = 4) -> dict:
    """The data sweep: method × dataset size at fixed epochs (steps ∝ dataset size), and
    method × epochs at the middle dataset size."""
    sizes, batch, model = ([16, 32], 8, "xs") if smoke else ([128, 512, 2048], 32, "s")
    epochs, more = (1, [2]) if smoke else (epochs, [16, 64])
    middle = sizes[len(sizes) // 2]
    points = [(d, epochs) for d in sizes] + [(middle, e) for e in more]
    grids = [{"recipe": recipe, "label": label, "model.size": model, "data.train": d,
              "train.steps": e * d // batch}
             for label, recipe in DATA_METHODS.items() for d, e in points]
    return {"base": settings(smoke, threads), "grids": grids}


def table(rows: list[dict]) -> list[str]:
    """One line per run."""
    lines = [f"{'method':<8} {'params':>9} {'steps':>6} {'data':>6} {'FLOPs':>9} {'test MSE':>10} {'time':>7}"]
    for r in sorted(rows, key=lambda r: (r["method"], r["params"], r["dataset_size"], r["steps"])):
        lines.append(f"{r['method']:<8} {r['params']:>9.3g} {r['steps']:>6.0f} {r['dataset_size']:>6.0f} "
                     f"{r['flops']:>9.3g} {r['test_loss']:>10.4g} {r.get('seconds', math.nan):>6.1f}s")
    return lines


def data_exponents(fits: dict) -> list[str]:
    """Loss-vs-data (fixed epochs) and loss-vs-epochs (fixed data) exponents with their
    68 % intervals, and the measured losses along each curve."""
    lines = []
    for method, fit in fits["methods"].items():
        for name, symbol in (("data", "D"), ("epochs", "E")):
            for label, law in fit[name].items():
                if "b" not in law:
                    continue
                interval = law.get("b_interval")
                text = f"[{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "n/a"
                points = ", ".join(f"{x:.3g}: {y:.3g}" for x, y in law["points"])
                lines.append(f"{method}: L({symbol}) at {label}: b = {law['b']:.3g} (68% {text}); measured {points}")
    return lines


def frontier_wins(rows: list[dict], reference: str = "augment") -> list[str]:
    """Per method, at each of the ``reference`` method's runs: the reference's test loss
    over the method's best loss at no more training compute (measured runs, no fit), and
    how many of those budgets the method wins (> 1)."""
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append((r["flops"], r["test_loss"]))
    lines = []
    for method, runs in sorted(by.items()):
        if method == reference or reference not in by:
            continue
        ratios = [loss / min(other for c, other in runs if c <= budget)
                  for budget, loss in sorted(by[reference]) if any(c <= budget for c, _ in runs)]
        if ratios:
            lines.append(f"{reference} ÷ {method} at {reference}'s {len(ratios)} budgets it reaches: "
                         f"wins {sum(x > 1 for x in ratios)}, ratios {min(ratios):.3g}–{max(ratios):.3g}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench_scale", help="output folder (results, fits, plots)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and 1-2 steps per point (seconds)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--methods", nargs="+", choices=sorted(COMPUTE_METHODS), default=None,
                        help="compute-sweep methods (default all); the data sweep runs only with all")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (1: tiny models run fastest single-threaded, "
                             "and a busy machine does not stall them)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = Path(args.out)
    threads = args.threads
    ray = {"num_cpus": 2} if args.backend == "ray" else {}
    start = time.perf_counter()
    sweeps = {"compute": compute_sweep(args.smoke, threads, args.methods)}
    if not args.methods:
        sweeps["data"] = data_sweep(args.smoke, threads)
    # Simulate the largest training set once: smaller ones (same seed) are sliced from it.
    largest = max(p["data.train"] for spec in sweeps.values() for p in expand(spec))
    make_rigid_dataset(largest, seed=0, workers=1 if args.smoke else None, progress=not args.smoke)
    fits = {}
    for name, spec in sweeps.items():
        outcome = run_sweep(spec, train_point, out / name, backend=args.backend, **ray)
        if outcome.failed:
            print(f"{len(outcome.failed)} {name} points failed: {outcome.failed}", file=sys.stderr)
            return 1
        rows = read_results(out / name / "results.csv")
        print(f"== {name} sweep ({len(rows)} runs, {out / name})")
        print("\n".join(table(rows)))
        fits[name] = fit_results(out / name / "results.csv", bootstrap=args.bootstrap, data_at="epochs")
        print("\n".join(summarize(fits[name])))
    if "data" in fits:
        print("\n".join(data_exponents(fits["data"])))
    common = fits["compute"]["common_compute"]
    if "loss" in common:
        for pair, value in sorted(common["ratio"].items()):
            print(f"loss ratio {pair} at C = {common['compute']:.3g} FLOPs: {value:.4g}")
    else:
        print(f"no ratio: the fitted frontiers share no compute range ({common})")
    print("\n".join(frontier_wins(read_results(out / "compute" / "results.csv"))))
    print(f"total {time.perf_counter() - start:.0f} s")
    ratios = {m: common["loss"]["augment"] / common["loss"][m] if "loss" in common
              and {"augment", m} <= set(common["loss"]) else math.nan for m in ("mfa", "fa")}
    print(f"scale_mfa_vs_aug={ratios['mfa']:.4g}")
    print(f"scale_fa_vs_aug={ratios['fa']:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
