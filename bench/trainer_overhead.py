"""Cost of the Accelerate trainer beyond the training it must do.

Side by side in one run, on the same model (the n-body transformer), data, batch order,
optimizer (AdamW, warm-up + cosine, gradient clipping) and number of steps: the
trainer's training-loop time (``train_loop_seconds``: evaluation and checkpoints
excluded, logging and progress included) ÷ the time of a hand-written PyTorch loop.
Runs alternate and the best of ``--repeats`` is kept for each, to damp the noise of a
shared machine. Last line: ``trainer_overhead=<ratio of times>`` (target ≤ 1.05).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch
import torch.nn.functional as F

from symtrain.models import NBodyTransformer
from symtrain.train import Trainer, load_recipe
from symtrain.train.build import build_task
from symtrain.train.optim import create_scheduler
from symtrain.train.recipes import find_recipe
from symtrain.train.state import EpochSampler


def hand_loop(recipe, task) -> float:
    """A plain PyTorch loop: the reference."""
    torch.manual_seed(recipe.train.seed)
    m = recipe.model.args
    model = NBodyTransformer(dim=m["dim"], layers=m["layers"], heads=m["heads"])
    o = recipe.optim
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                            weight_decay=o.weight_decay)
    sched = create_scheduler(opt, recipe)
    sampler = EpochSampler(len(task.train), recipe.train.seed)
    batch, steps = recipe.data.batch_size, recipe.train.steps
    start = time.perf_counter()
    step, epoch = 0, 0
    while step < steps:
        sampler.set_epoch(epoch)
        order = list(sampler)
        for i in range(0, len(order) - batch + 1, batch):
            x, y = task.train.__getitems__(order[i:i + batch])
            loss = F.mse_loss(model(*x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            opt.step()
            sched.step()
            float(loss.detach())
            step += 1
            if step == steps:
                break
        epoch += 1
    return time.perf_counter() - start


def trainer_loop(recipe, task) -> float:
    with tempfile.TemporaryDirectory() as out:
        return Trainer(recipe, out, task=task).fit()["train_loop_seconds"]


def overrides(args) -> list[str]:
    return ["data.batch_size=100", "model.dim=64", "model.layers=4", "model.heads=4",
            f"train.steps={args.steps}", "train.log_every=10", f"train.eval_every={10 * args.steps}",
            f"train.checkpoint_every={10 * args.steps}", "train.progress=false",
            f"train.threads={args.threads}", "train.eval_batches=1",
            "symmetrization.lie_derivative=false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    recipe = load_recipe(find_recipe("nbody_plain"), overrides(args), budget="paper")
    torch.set_num_threads(args.threads)
    task = build_task(recipe)
    warm = load_recipe(find_recipe("nbody_plain"), [f"{k}={v}" for k, v in [
        ("train.steps", 10)]] + [o for o in overrides(args) if not o.startswith("train.steps")], budget="paper")
    hand_loop(warm, task), trainer_loop(warm, task)  # one-time costs (allocator, first calls)
    hand, ours = [], []
    for rep in range(args.repeats):  # alternate which goes first
        if rep % 2:
            ours.append(trainer_loop(recipe, task))
        hand.append(hand_loop(recipe, task))
        if not rep % 2:
            ours.append(trainer_loop(recipe, task))
    h, t = min(hand), min(ours)
    print(f"{'loop':<22}{'seconds':>10}{'steps/s':>10}   (n-body transformer d=64, 4 layers, batch 100, "
          f"{args.steps} steps, {args.threads} thread(s), best of {args.repeats})")
    print(f"{'hand-written PyTorch':<22}{h:>10.2f}{args.steps / h:>10.1f}")
    print(f"{'symtrain Trainer':<22}{t:>10.2f}{args.steps / t:>10.1f}")
    print(f"trainer_overhead={t / h:.3f}")


if __name__ == "__main__":
    main()
