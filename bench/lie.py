"""Cost of the Lie derivative relative to a forward pass (not a timed test).

On timm ``resnet18`` and ``vit_tiny_patch16_224`` (random init, 224×224, batch 8, CPU):

(a) one generator with ``symtrain.lie_derivative`` (forward-mode ``torch.func.jvp``)
    ÷ one forward pass on the same batch;
(b) all image generators with ``symtrain.lie.lie_derivatives`` (one primal pass shared
    through ``vmap`` over the tangents) ÷ (number of generators × one forward);
(c) as (a) for the reference code's double-backward formulation (translation by affine
    grid + bilinear sampling, ``d/dt`` by differentiating a VJP), written here only as a
    comparison.

Prints one line per model, then ``lie_all_per_generator=<worst (b)>`` and, last,
``lie_vs_forward=<worst (a)>``. Usage: ``python bench/lie.py [--batch 8] [--size 224]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import timm
import torch
import torch.nn.functional as F

from symtrain.lie import IMAGE_GENERATORS, forward_ad_attention, lie_derivative, lie_derivatives


def timed(fn, reps: int) -> float:
    """Best of ``reps`` runs after a warm-up (the minimum is the least disturbed by other
    processes on a shared machine)."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def double_backward_translation(model, x: torch.Tensor) -> torch.Tensor:
    """The reference formulation: d/dt f(translate(x, t)) by the double-backward trick
    (t in normalised coordinates, bilinear sampling, reflection padding)."""
    t = torch.zeros(1, requires_grad=True)
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta = theta + torch.stack([torch.zeros(()), torch.zeros(()), t[0]]).reshape(1, 1, 3) * \
        torch.tensor([1.0, 0.0]).reshape(1, 2, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = model(F.grid_sample(x, grid, padding_mode="reflection", align_corners=False))
    v = torch.zeros_like(y, requires_grad=True)
    (g,) = torch.autograd.grad(y, t, v, create_graph=True)
    (d,) = torch.autograd.grad(g, v, torch.ones_like(g))
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="resnet18,vit_tiny_patch16_224")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    worst_a = worst_b = 0.0
    gens = list(IMAGE_GENERATORS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.size}x{args.size}, {len(gens)} generators")
    for name in args.models.split(","):
        kwargs = {"img_size": args.size} if name.startswith("vit") else {}
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.no_grad():
            fwd = timed(lambda: model(x), args.reps)
            one = timed(lambda: lie_derivative(model, x, "rotation"), args.reps)
            every = timed(lambda: lie_derivatives(model, x, gens), max(1, args.reps - 1))
        with forward_ad_attention(model):  # fused attention has no double backward either
            double = timed(lambda: double_backward_translation(model, x), max(1, args.reps - 1))
        a, b, c = one / fwd, every / (len(gens) * fwd), double / fwd
        worst_a, worst_b = max(worst_a, a), max(worst_b, b)
        print(f"{name}: forward {fwd * 1e3:.0f} ms | "
              f"(a) jvp one generator {a:.2f}x | (b) {len(gens)} generators shared primal "
              f"{b:.2f}x per generator | (c) double backward {c:.2f}x")
    print(f"lie_all_per_generator={worst_b:.2f}")
    print(f"lie_vs_forward={worst_a:.2f}")


if __name__ == "__main__":
    main()
