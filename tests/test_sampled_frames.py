"""Frames too large to enumerate are sampled (minimal S_n frames past ``max_elements``):
such a wrapper is a Monte-Carlo estimate, so it says it is stochastic, its exact check
fixes the draw (and still checks the enumerated inputs' frames in the same batch), and
the trainer skips the metrics that assume a deterministic model (Lie derivatives)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from graph_families import petersen, random_graph
from models import PointMLP
from test_minimal_perm_frames import DenseNodeModel, _dense_batch

import symtrain as st
from symtrain.actions import Fields
from symtrain.symmetrize.frames_permutation import MinimalPermutationFrame

pytestmark = pytest.mark.filterwarnings("ignore::symtrain.symmetrize.frames_permutation.MonteCarloFrameWarning")

GRAPHS = Fields("nodes", "adjacency")


def _frame(**kw):
    # Petersen: |Aut| = 120 > 16, so its frame is 8 samples of it
    return MinimalPermutationFrame(max_elements=16, samples=8, **kw)


def _wrappers(dtype, frame=None):
    sym = st.Symmetry("S_n", GRAPHS, "nodes")
    base = DenseNodeModel(10, 2).to(dtype)
    fa = st.FrameAveraging(base, sym, frames=[frame or _frame()])
    canon = st.Canonicalization(base, sym, canonicalizer=[frame or _frame()])
    return sym, base, (fa, canon)


def _batches(dtype):
    rng = np.random.default_rng(3)
    generic = _dense_batch([random_graph(10, 0.4, rng) for _ in range(3)], 10, dtype,
                           feats=torch.randn(3, 10, 2, dtype=dtype))[:2]
    # a Petersen graph (sampled) beside a generic graph (one element, enumerated)
    mixed = _dense_batch([petersen(), random_graph(10, 0.4, rng)], 10, dtype)[:2]
    return generic, mixed


def test_a_sampled_frame_says_it_is_stochastic(dtype):
    sym, _, wrappers = _wrappers(dtype)
    generic, mixed = _batches(dtype)
    for wrapper in wrappers:
        wrapper(*generic)
        assert not wrapper.stochastic  # every frame enumerated: deterministic
        first, second = wrapper(*mixed), wrapper(*mixed)
        assert wrapper.stochastic
        assert (first[0] - second[0]).abs().max() > 1e-4  # two draws differ on the Petersen graph
        assert torch.equal(first[1], second[1])  # the enumerated graph's output does not


def test_exact_check_of_a_sampled_frame_fixes_the_draw(dtype):
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    sym, base, wrappers = _wrappers(dtype)
    generic, mixed = _batches(dtype)
    assert st.equivariance_error(base, sym, mixed).max > 1e-2  # the backbone alone fails
    for wrapper in wrappers:
        wrapper(*generic)  # the last call enumerated: the check must still find the draw
        err = st.equivariance_error(wrapper, sym, mixed)
        assert err.estimate == "fixed draw" and err.exact and err.max < tol
        # independent draws: a Monte-Carlo comparison, far from exact on the Petersen graph
        loose = st.equivariance_error(wrapper, sym, mixed, exact=False)
        assert loose.estimate == "monte-carlo" and loose.max > 1e-3
        # and after a sampled call, a generic batch is checked as deterministic again
        err = st.equivariance_error(wrapper, sym, generic)
        assert err.estimate == "deterministic" and err.max < tol


class UnlabelledWhereEnumerated(MinimalPermutationFrame):
    """Not equivariant: the identity instead of the canonical order on every input whose
    frame is enumerated (the sampled ones are left alone)."""

    def __call__(self, factor, symmetry, x, context):
        g, w = super().__call__(factor, symmetry, x, context)
        k = w.shape[1]
        keep = self.sampled.repeat_interleave(k)[:, None]
        return torch.where(keep, g, torch.arange(g.shape[1]).expand_as(g)), w


def test_the_fixed_draw_still_checks_the_enumerated_frames(dtype):
    """In a batch with sampled and enumerated inputs the draw is fixed for the sampled ones
    only: the others' frames are recomputed on the moved input, so a wrong frame fails."""
    sym, _, wrappers = _wrappers(dtype, frame=UnlabelledWhereEnumerated(max_elements=16, samples=8))
    _, mixed = _batches(dtype)
    for wrapper in wrappers:
        err = st.equivariance_error(wrapper, sym, mixed)
        assert err.estimate == "fixed draw" and err.max > 1e-2


def test_trainer_skips_the_lie_derivative_of_a_sampled_frame(float64):
    """S_n × E(3) on 9 repeated points (|Aut| = 9!, sampled): the trainer's check is exact
    (fixed draw) and reports no Lie derivative; on generic points it reports both."""
    from symtrain.train import load_recipe
    from symtrain.train.evaluation import Evaluator
    from symtrain.train.recipes import find_recipe

    recipe = load_recipe(find_recipe("nbody_plain"), ["train.progress=false"], "smoke")
    sym = st.Symmetry("S_n x E3", "points", "points")
    fa = st.FrameAveraging(PointMLP(9, 3, 3).double(), sym)
    same = torch.ones(2, 9, 3, dtype=torch.float64) + torch.randn(2, 1, 3, dtype=torch.float64)
    with torch.no_grad():
        out = Evaluator(recipe).equivariance(fa, sym, same, "test")
    assert out["test/equivariance_error_exact"] == 1.0 and out["test/equivariance_error_max"] < 1e-12
    assert not [k for k in out if "lie" in k]
    with torch.no_grad():
        out = Evaluator(recipe).equivariance(fa, sym, torch.randn(2, 9, 3, dtype=torch.float64), "test")
    assert out["test/equivariance_error_max"] < 1e-12 and out["test/lie_derivative"] < 1e-12
