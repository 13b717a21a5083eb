"""Canonical labelling and automorphism groups (symtrain.groups.automorphisms): the
python search and nauty (pynauty) agree, canonical forms are relabelling-invariant,
and the stabiliser chains list / sample exactly the automorphism group."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from graph_families import SYMMETRIC, complete, cycle, random_graph

from symtrain.groups.automorphisms import (
    PermutationChain,
    canonical_labelling,
    colour_ranks,
    compose,
    pynauty_available,
    relabel,
)
from symtrain.registry import ArgumentError

BACKENDS = ["python"] + (["pynauty"] if pynauty_available() else [])


def _is_automorphism(e, c, p):
    return bool((e[np.ix_(p, p)] == e).all() and (c[p] == c).all())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SYMMETRIC))
def test_symmetric_families_have_their_automorphism_group(name, backend):
    e, order = SYMMETRIC[name]
    c = np.zeros(len(e), dtype=np.int64)
    canon = canonical_labelling(e, c, backend=backend)
    assert canon.backend == backend
    assert canon.group.order == order
    elements = canon.group.elements()
    assert len({p.tobytes() for p in elements}) == order
    assert all(_is_automorphism(e, c, p) for p in elements)


@pytest.mark.parametrize("backend", BACKENDS)
def test_canonical_form_is_invariant_and_tells_graphs_apart(backend):
    rng = np.random.default_rng(0)
    graphs = [random_graph(11, 0.35, rng, colours=3) for _ in range(4)] + [cycle(9), complete(5)]
    certs = []
    for e in graphs:
        n = len(e)
        c = rng.integers(0, 2, n)
        canon = canonical_labelling(e, c, backend=backend)
        for _ in range(3):
            p = rng.permutation(n)
            moved = canonical_labelling(relabel(e, p), c[np.argsort(p)], backend=backend)
            assert moved.certificate == canon.certificate
            assert moved.group.order == canon.group.order
        # the canonical graph is the input relabelled
        assert np.array_equal(relabel(e, canon.labelling), np.frombuffer(
            canon.certificate[n * 8:], dtype=np.int64).reshape(n, n))
        certs.append(canon.certificate)
    assert len(set(certs)) == len(certs)  # non-isomorphic graphs differ
    # colours count: the same graph with one vertex recoloured is a different graph
    e = cycle(6)
    c = np.zeros(6, dtype=np.int64)
    c2 = c.copy()
    c2[0] = 1
    assert canonical_labelling(e, c, backend=backend).certificate != \
        canonical_labelling(e, c2, backend=backend).certificate
    assert canonical_labelling(e, c2, backend=backend).group.order == 2


@pytest.mark.skipif(not pynauty_available(), reason="pynauty not installed")
def test_python_search_agrees_with_nauty_on_random_coloured_graphs():
    rng = np.random.default_rng(1)
    for trial in range(12):
        n = int(rng.integers(4, 14))
        e = random_graph(n, float(rng.uniform(0.1, 0.9)), rng, colours=int(rng.integers(1, 4)))
        if trial % 3 == 0:  # a directed graph with self-loops
            e = (rng.random((n, n)) < 0.3).astype(np.int64)
        c = rng.integers(0, 2, n)
        py = canonical_labelling(e, c, backend="python")
        nauty = canonical_labelling(e, c, backend="pynauty")
        assert py.group.order == nauty.group.order
        for g in nauty.generators:
            assert py.group.contains(g)
        for g in py.generators:
            assert nauty.group.contains(g)
        p = rng.permutation(n)
        for backend, canon in (("python", py), ("pynauty", nauty)):
            moved = canonical_labelling(relabel(e, p), c[np.argsort(p)], backend=backend)
            assert moved.certificate == canon.certificate


def test_chain_samples_uniformly_and_contains_only_its_group():
    chain = PermutationChain.from_generators(12, [np.roll(np.arange(12), 1), np.arange(12)[::-1].copy()])
    assert chain.order == 24  # the dihedral group of the 12-gon
    draws = chain.sample(4800, torch.Generator().manual_seed(0))
    elements = {p.tobytes(): 0 for p in chain.elements()}
    for p in draws:
        elements[p.tobytes()] += 1  # a KeyError would be a draw outside the group
    counts = np.array(list(elements.values()))
    assert counts.min() > 120 and counts.max() < 280  # 200 expected each
    blocks = PermutationChain.symmetric_blocks(7, [[0, 3, 5], [1, 6]])
    assert blocks.order == math.factorial(3) * 2
    assert not blocks.contains(compose(np.array([1, 0, 2, 3, 4, 5, 6]), np.arange(7)))


def test_colour_ranks_and_bad_input():
    assert colour_ranks(np.array([[0.5, 1], [0.1, 2], [0.5, 1]])).tolist() == [1, 0, 1]
    with pytest.raises(ArgumentError, match="edges"):
        canonical_labelling(np.zeros((3, 4), dtype=np.int64), np.zeros(3, dtype=np.int64))
    with pytest.raises(ArgumentError, match="colours"):
        canonical_labelling(np.zeros((3, 3), dtype=np.int64), np.zeros(4, dtype=np.int64))
    with pytest.raises(ArgumentError, match="integer"):
        canonical_labelling(np.zeros((3, 3)), np.zeros(3, dtype=np.int64))
    with pytest.raises(ArgumentError, match="backend"):
        canonical_labelling(cycle(3), np.zeros(3, dtype=np.int64), backend="bliss")
