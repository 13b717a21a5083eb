"""REMUL's speed claim measured: training steps/s and inference samples/s of a plain
atom transformer trained with REMUL against the same transformer symmetrized (frame
averaging, probabilistic symmetrization) and against equivariant references from
maintained libraries (EGNN from egnn-pytorch, SchNet from PyG), at about equal
parameter count, on MD17-shaped inputs; then the test error each reaches at the
recipes' ``cpu`` budget.

**Inputs.** Aspirin's size and composition (21 atoms, C9H8O4) in MD17's own raw format:
a trajectory of a 21-atom molecule whose energy and forces come from a pair potential
(``tests/pyg_fixtures.py``), written as ``md17_aspirin.npz`` and read through PyG's
``MD17`` class by the ``md17`` dataset, exactly as real data would be. The speed does
not depend on the labels; the error column is on this synthetic molecule, not on real
aspirin (no copy of MD17 is available offline here).

**Models.** The recipes ``md17_transformer_remul``, ``md17_transformer_fa``,
``md17_transformer_ps``, ``md17_egnn``, ``md17_schnet`` at their ``cpu`` preset (sizes
chosen for about the transformer's parameter count; the table lists the counts, PS's
interface network on top). Transformers predict forces directly (equivariant vectors);
EGNN and SchNet predict the energy and take forces as −∂E/∂x by autograd, in training
(double backward) and in inference.

**Timing.** Each measurement is one training step (augmentation or REMUL's extra
forward, loss, backward, AdamW step) on a batch of ``--batch`` frames, or one inference
forward (``eval()``; PS with its ``eval_samples``, FA with all its frames) on
``--infer-batch`` frames. Methods are timed in interleaved rounds (round-robin, so
machine noise hits all alike), ``--repeats`` rounds after warm-up; the figures are
medians. One thread (``torch.set_num_threads(1)``).

**Error.** Each recipe trained with :class:`~symtrain.train.Trainer` at its ``cpu``
preset (``--steps`` overrides ``train.steps``: a reduced budget, labelled in the
output); test force MAE and energy MAE in the dataset's units (kcal/mol/Å, kcal/mol).

Last lines: ``remul_train_speedup=<REMUL steps/s ÷ the fastest equivariant reference's>``
and ``remul_infer_speedup=<the same for inference samples/s>`` (the references being
EGNN and SchNet). REMUL's paper reports up to 2.5× (training) and 10× (inference) on a
GPU against its own baselines; these are CPU figures against these references.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pyg_fixtures import ASPIRIN_ATOMS, aspirin_like_geometry, write_md17  # noqa: E402

from symtrain.train import Trainer, load_recipe  # noqa: E402
from symtrain.train.build import build  # noqa: E402
from symtrain.train.loss import TrainingLoss  # noqa: E402
from symtrain.train.recipes import find_recipe  # noqa: E402

ROWS = [("transformer + REMUL", "md17_transformer_remul", False),
        ("transformer + FA", "md17_transformer_fa", False),
        ("transformer + PS", "md17_transformer_ps", False),
        ("EGNN (egnn-pytorch)", "md17_egnn", True),
        ("SchNet (PyG)", "md17_schnet", True)]
"""(label, recipe, equivariant reference)."""


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def prepare(recipe_name: str, root: Path, overrides: list[str]):
    recipe = load_recipe(find_recipe(recipe_name), ["train.progress=false", f"data.path={root}", *overrides], "cpu")
    task, _, built = build(recipe)
    loss = TrainingLoss(built, task)
    opt = torch.optim.AdamW(built.model.parameters(), lr=1e-4)
    return recipe, task, built, loss, opt


def batch_of(task, n: int):
    data = task.train if len(task.train) >= n else task.test
    return data.__getitems__([i % len(data) for i in range(n)])


def train_step(model, loss, opt, x, y) -> None:
    model.train()
    opt.zero_grad(set_to_none=True)
    value, _ = loss(model, x, y)
    value.backward()
    opt.step()


def infer(model, x) -> None:
    model.eval()
    with torch.no_grad():
        model(*x)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def speed(root: Path, args) -> dict[str, dict]:
    prepared = {}
    for label, name, _ in ROWS:
        recipe, task, built, loss, opt = prepare(name, root, [])
        train_batch = batch_of(task, args.batch)
        infer_batch = batch_of(task, args.infer_batch)[0]
        base = getattr(built.model, "base", built.model)
        prepared[label] = dict(model=built.model, loss=loss, opt=opt, train=train_batch, infer=infer_batch,
                               params=params(base), total=params(built.model), train_s=[], infer_s=[])
    for _ in range(args.warmup):
        for p in prepared.values():
            train_step(p["model"], p["loss"], p["opt"], *p["train"])
            infer(p["model"], p["infer"])
    for _ in range(args.repeats):  # interleaved rounds
        for p in prepared.values():
            p["train_s"].append(timed(lambda p=p: train_step(p["model"], p["loss"], p["opt"], *p["train"])))
        for p in prepared.values():
            p["infer_s"].append(timed(lambda p=p: infer(p["model"], p["infer"])))
    for p in prepared.values():
        p["steps_per_s"] = 1.0 / statistics.median(p["train_s"])
        p["samples_per_s"] = args.infer_batch / statistics.median(p["infer_s"])
    return prepared


def errors(root: Path, args) -> dict[str, dict]:
    out = {}
    overrides = [f"train.steps={args.steps}"] if args.steps else []
    overrides += ["train.eval_every=100000", "train.checkpoint_every=100000"]
    for label, name, _ in ROWS:
        recipe = load_recipe(find_recipe(name), ["train.progress=false", f"data.path={root}", *overrides], "cpu")
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run:
            m = Trainer(recipe, run).fit()
        out[label] = dict(force=m["test/force_mae"], energy=m["test/energy_mae"], steps=recipe.train.steps,
                          seconds=time.perf_counter() - start)
        print(f"trained {label}: force MAE {out[label]['force']:.3f} ({out[label]['seconds']:.0f} s)", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="training batch (the cpu preset's)")
    parser.add_argument("--infer-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None,
                        help="train.steps for the error column (default: each recipe's cpu budget)")
    parser.add_argument("--no-train", action="store_true", help="speed only")
    args = parser.parse_args(argv)
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    logging.getLogger("symtrain").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_md17(Path(tmp) / "md17", "aspirin", frames=1500, atoms=ASPIRIN_ATOMS,
                          geometry=aspirin_like_geometry())
        prepared = speed(root, args)
        err = {} if args.no_train else errors(root, args)
    budget = "cpu budget" if not args.steps else f"REDUCED budget: {args.steps} steps"
    budget = "errors not measured (--no-train): -" if args.no_train else f"error at the {budget}"
    print(f"\nMD17-shaped inputs: 21 atoms (aspirin's C9H8O4), synthetic pair-potential trajectory "
          f"in MD17's raw format; 1 thread; train batch {args.batch}, inference batch {args.infer_batch}; "
          f"medians of {args.repeats} interleaved rounds; {budget}")
    print(f"{'model':<22}{'params':>8}{'(+interface)':>13}{'train steps/s':>15}{'infer samples/s':>17}"
          f"{'force MAE':>11}{'energy MAE':>12}")
    for label, _, _ in ROWS:
        p, e = prepared[label], err.get(label, {})
        extra = f"+{p['total'] - p['params']}" if p["total"] != p["params"] else ""
        cells = "".join(f"{e[k]:>{w}.3f}" if k in e else f"{'-':>{w}}" for k, w in (("force", 11), ("energy", 12)))
        print(f"{label:<22}{p['params']:>8}{extra:>13}{p['steps_per_s']:>15.1f}{p['samples_per_s']:>17.0f}{cells}")
    refs = [label for label, _, ref in ROWS if ref]
    remul = prepared["transformer + REMUL"]
    best_train = max(prepared[r]["steps_per_s"] for r in refs)
    best_infer = max(prepared[r]["samples_per_s"] for r in refs)
    print(f"remul_train_speedup={remul['steps_per_s'] / best_train:.2f}")
    print(f"remul_infer_speedup={remul['samples_per_s'] / best_infer:.2f}")


if __name__ == "__main__":
    main()
