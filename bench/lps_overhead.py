"""Cost of ProbabilisticSymmetrization beyond the forward passes it must make.

Side by side in one run, k = 10 samples: the LPS forward ÷ (the base model's forward on
the input already repeated k times + the interface's forward on that repeated input).
Everything else the wrapper does (noise, repeating, acting with g⁻¹ and g, the
straight-through terms, the mean) is the overhead. Two modes per case:

- eval: ``model.eval()`` under ``torch.no_grad()`` (hard elements only);
- train: training mode with gradients enabled (forward only; the interface computes its
  soft part and entropy penalty in both numerator and denominator).

Cases: S_n on 32 dense graphs of 16 nodes (GIN interface, MLP on the flattened
adjacency); O(3) on 8 point clouds of 32 points (Vector-Neuron interface, small
transformer). Timings use one thread by default; the figure per row is the median of paired
ratios. Last line: ``lps_overhead=<worst ratio>`` (target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch
from overhead import SmallTransformer, timed  # the same point model and timer as bench/overhead.py

import symtrain as st
from symtrain.models import AdjacencyMLP
from symtrain.symmetrize.interfaces import PermutationInterface, RotationInterface
from symtrain.symmetrize.probabilistic import ProbabilisticSymmetrization


def compare(name: str, model: ProbabilisticSymmetrization, x, repeats: int, train: bool) -> float:
    sym, itf, k = model.symmetry, model.interface, model.samples
    model.train(train)
    ctx = sym.context(x)
    x_rep = sym.input.repeat(x, k, ctx)
    ctx_k = ctx.repeat(k)
    noise = itf.sample_noise(x_rep, ctx_k, model.noise_scale)

    def parts():
        itf.relaxed(x_rep, noise, ctx_k, soft=train)
        model.base(x_rep)

    def wrapped():
        model(x)

    grad = contextlib.nullcontext() if train else torch.no_grad()
    with grad:
        for _ in range(3):  # warm-up
            parts(), wrapped()
        part_times, wrap_times = [], []
        for i in range(repeats):  # interleaved (order alternating), so load hits both alike
            first, second = (parts, wrapped) if i % 2 == 0 else (wrapped, parts)
            a, b = timed(first), timed(second)
            part_times.append(a if i % 2 == 0 else b)
            wrap_times.append(b if i % 2 == 0 else a)
    # On a shared machine the load changes from call to call: the median of the paired
    # ratios is the robust figure; the minima are printed for reference.
    ratio = statistics.median(w / p for w, p in zip(wrap_times, part_times, strict=True))
    mode = "train" if train else "eval"
    print(f"{name:<38} {mode:<5} base+interface {min(part_times) * 1e3:8.2f} ms   "
          f"LPS {min(wrap_times) * 1e3:8.2f} ms   median ratio {ratio:.3f}")
    return ratio


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings)")
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ratios = []

    n = 16
    adj = (torch.rand(32, n, n) < 0.3).float()
    adj = torch.triu(adj, 1)
    adj = adj + adj.transpose(1, 2)
    sn = st.Symmetry("S_n", st.actions.Adjacency(), st.actions.Trivial())
    graph_model = ProbabilisticSymmetrization(AdjacencyMLP(n, 2, hidden=512, layers=3), sn,
                                              PermutationInterface(in_features=0),
                                              samples=args.samples, noise_scale=1.0)
    clouds = torch.randn(8, 32, 3)
    o3 = st.Symmetry("O3", st.actions.Points(), st.actions.Points())
    point_model = ProbabilisticSymmetrization(SmallTransformer(), o3, RotationInterface("O3"),
                                              samples=args.samples, noise_scale=1.0)
    for train in (False, True):
        ratios.append(compare(f"S_n k={args.samples}, 32 graphs x 16 nodes", graph_model, adj,
                              args.repeats, train))
        ratios.append(compare(f"O3 k={args.samples}, 8 clouds x 32 points", point_model, clouds,
                              args.repeats, train))
    print(f"lps_overhead={max(ratios):.3f}")


if __name__ == "__main__":
    main()
