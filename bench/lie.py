"""Cost and accuracy of the Lie derivative relative to a forward pass (not a timed test).

On timm ``resnet18`` and ``vit_tiny_patch16_224`` (random init, 224×224, batch 8, CPU,
float32), for each method (``jvp``: ``torch.func.jvp``; ``fd``: central differences with
the ± copies batched):

(a) one generator (rotation) with ``symtrain.lie_derivative`` ÷ one forward pass on the
    same batch;
(b) all image generators with ``symtrain.lie.lie_derivatives`` (shared primal) ÷ (number
    of generators × one forward);
err: the largest relative error ``‖L − L₆₄‖ / ‖L₆₄‖`` over the generators, against
    ``torch.func.jvp`` on the float64 copy of the model (bound: 1e-3);
(c) the reference code's double-backward formulation (translation by affine grid +
    bilinear sampling, ``d/dt`` by differentiating a VJP), for comparison only.

The timings are interleaved (one round runs every candidate once) and the best round is
kept, the least disturbed by other processes on a shared machine. Then an informational
line on ``torch.compile`` of the jvp path (compile time, and (a) compiled).

Then (b) for ``jvp`` again in a child process with glibc's allocator told to keep freed
memory (``MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=1073741824``): the tangents of
the twelve generators are fresh blocks of tens of MB, which glibc otherwise maps and
unmaps on every call, page-faulting them in again (a user option, see
docs/lie_study.md; the library never sets it). ``--no-malloc`` skips that line.

The last two lines are ``lie_all_per_generator=<worst (b)>`` and, last,
``lie_vs_forward=<worst (a)>``, the worst over the models for the method ``auto`` picks
(:func:`symtrain.lie.resolve_method`: for (a) one generator, for (b) all of them per call). Usage:
``python bench/lie.py [--batch 8] [--size 224] [--no-compile]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
import warnings
from typing import Callable

import timm
import torch
import torch.nn.functional as F

from symtrain.lie import (
    IMAGE_GENERATORS,
    ImageGenerator,
    forward_ad_attention,
    lie_derivative,
    lie_derivatives,
    resolve_method,
)


def race(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Best time of each function over ``reps`` interleaved rounds, after a warm-up."""
    for fn in fns.values():
        fn()
    best = {k: float("inf") for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


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


def relative_error(d: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> float:
    return max(float((d[k].double() - ref[k]).norm() / ref[k].norm()) for k in ref)


def compiled_jvp(model, x: torch.Tensor, reps: int) -> str:
    """``torch.compile(fullgraph=True)`` of ``torch.func.jvp`` along the rotation tangent:
    compile time and the steady-state time ÷ a forward, beside the eager jvp. Batch norm
    is folded into the convolutions first (eval mode; ``torch.fx`` fuse), since dynamo's
    fake tensors fail on ``batch_norm`` under ``jvp`` (as on ``layer_norm``)."""
    from torch.fx.experimental.optimization import fuse

    v = ImageGenerator("rotation").bind(x, ("invariant", 0)).input_tangent
    try:
        model = fuse(model)
    except Exception:  # not traceable by torch.fx: compile it as it is
        pass
    eager = lambda: torch.func.jvp(model, (x,), (v,))  # noqa: E731
    try:
        with forward_ad_attention(model), torch.no_grad():
            fn = torch.compile(lambda a, b: torch.func.jvp(model, (a,), (b,)), fullgraph=True)
            start = time.perf_counter()
            out = fn(x, v)
            first = time.perf_counter() - start
            ref = eager()[1]
            err = float((out[1] - ref).norm() / ref.norm())
            t = race({"fwd": lambda: model(x), "eager": eager, "compiled": lambda: fn(x, v)}, reps)
    except Exception as exc:  # report, do not fail the benchmark
        reason = str(exc).split("got RuntimeError(")[-1].splitlines()[0][:120]
        return f"fails ({type(exc).__name__}: {reason})"
    return (f"compile {first:.0f} s, compiled jvp {t['compiled'] / t['fwd']:.2f}x forward vs eager "
            f"{t['eager'] / t['fwd']:.2f}x (rel. diff {err:.0e})")


#: glibc settings that keep freed blocks instead of unmapping them (see the docstring).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


def jvp_all_ratios(models: list[str], batch: int, size: int, reps: int) -> dict[str, float]:
    """(b) for ``jvp``, all generators ÷ (number × forward), per model (best round)."""
    gens = list(IMAGE_GENERATORS)
    ratios = {}
    for name in models:
        kwargs = {"img_size": size} if name.startswith("vit") else {}
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        x = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            t = race({"fwd": lambda model=model, x=x: model(x),
                      "all": lambda model=model, x=x: lie_derivatives(model, x, gens, method="jvp")}, reps)
        ratios[name] = t["all"] / (len(gens) * t["fwd"])
    return ratios


def malloc_line(args) -> str:
    """(b) for ``jvp`` measured in a child process under :data:`MALLOC_ENV`."""
    cmd = [sys.executable, __file__, "--only-jvp-all", "--batch", str(args.batch), "--size", str(args.size),
           "--reps", str(args.reps), "--models", args.models]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    child = subprocess.run(cmd, env={**os.environ, **MALLOC_ENV}, capture_output=True, text=True)
    if child.returncode:
        return f"with {' '.join(f'{k}={v}' for k, v in MALLOC_ENV.items())}: failed ({child.stderr.strip()[-200:]})"
    return (f"jvp (b) with {' '.join(f'{k}={v}' for k, v in MALLOC_ENV.items())} (child process): "
            + child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="resnet18,vit_tiny_patch16_224")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile line")
    parser.add_argument("--no-malloc", action="store_true", help="skip the line measuring (b) with glibc's "
                        "mmap threshold raised (a child process)")
    parser.add_argument("--only-jvp-all", action="store_true", help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    for option in ("batch", "size", "reps"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1, got {getattr(args, option)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    if args.only_jvp_all:
        ratios = jvp_all_ratios(args.models.split(","), args.batch, args.size, args.reps)
        print(", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        return
    worst_a = worst_b = 0.0
    gens = list(IMAGE_GENERATORS)
    compile_lines = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.size}x{args.size}, {len(gens)} generators; times ÷ forward, err vs float64 jvp")
    for name in args.models.split(","):
        kwargs = {"img_size": args.size} if name.startswith("vit") else {}
        model = timm.create_model(name, pretrained=False, **kwargs).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.no_grad():
            m64, x64 = copy.deepcopy(model).double(), x.double()
            ref_one = {"rotation": lie_derivative(m64, x64, "rotation", method="jvp")}
            ref_all = lie_derivatives(m64, x64, gens, method="jvp")
            del m64
            cands = {"forward": lambda model=model, x=x: model(x)}
            for method in ("jvp", "fd"):
                cands[f"{method} one"] = (lambda m=method, model=model, x=x:
                                          lie_derivative(model, x, "rotation", method=m))
            one = race(cands, args.reps)
            every = race({f"{m} all": lambda m=m, model=model, x=x: lie_derivatives(model, x, gens, method=m)
                          for m in ("jvp", "fd")}, max(1, args.reps - 1))
            fwd = one["forward"]
            figures = {}
            for method in ("jvp", "fd"):
                e1 = relative_error({"rotation": lie_derivative(model, x, "rotation", method=method)}, ref_one)
                ea = relative_error(lie_derivatives(model, x, gens, method=method), ref_all)
                a, b = one[f"{method} one"] / fwd, every[f"{method} all"] / (len(gens) * fwd)
                figures[method] = (a, b, max(e1, ea))
        with forward_ad_attention(model):  # fused attention has no double backward either
            double = race({"db": lambda model=model, x=x: double_backward_translation(model, x)},
                          max(1, args.reps - 1))["db"]
        auto_one, auto_all = resolve_method(model, x), resolve_method(model, x, per_call=len(gens))
        a, b = figures[auto_one][0], figures[auto_all][1]
        worst_a, worst_b = max(worst_a, a), max(worst_b, b)
        print(f"{name}: forward {fwd * 1e3:.0f} ms | " + " | ".join(
            f"{m}: (a) {fa:.2f}x (b) {fb:.2f}x err {fe:.1e}" for m, (fa, fb, fe) in figures.items())
            + f" | (c) double backward {double / fwd:.2f}x | auto picks {auto_one} (a), {auto_all} (b)")
        if not args.no_compile:
            compile_lines.append(f"torch.compile jvp (a), {name}: {compiled_jvp(model, x, args.reps)}")
    for line in compile_lines:
        print(line)
    if not args.no_malloc:
        print(malloc_line(args))
    print(f"lie_all_per_generator={worst_b:.2f}")
    print(f"lie_vs_forward={worst_a:.2f}")


if __name__ == "__main__":
    main()
