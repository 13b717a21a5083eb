"""Canonical labelling and automorphism groups of vertex- and edge-coloured graphs.

A coloured graph on ``n`` vertices is given by

- ``edges``: ``[n, n]`` non-negative integers, the colour of the edge ``i → j``
  (``0``: no edge). Symmetric for undirected graphs; weighted or typed edges are
  colours (:func:`colour_ranks` turns any invariant values into such ranks);
- ``colours``: ``[n]`` non-negative integers, the vertex colours. Their *order* matters
  (a canonical labelling puts colour 0 first), not only which vertices share one.

:func:`canonical_labelling` returns a :class:`Canonical`: a labelling ``lab`` (vertex
``v`` goes to position ``lab[v]``; the canonical graph ``C[lab[i], lab[j]] = E[i, j]`` is
the same for every relabelling of the input) and the automorphism group as a stabiliser
chain (:class:`PermutationChain`: its exact order, every element when there are few,
uniform samples when there are many).

Two backends give the labelling and the automorphism generators:

- ``"pynauty"``: nauty (McKay & Piperno) through the ``pynauty`` package (extra
  ``graphs``). Edge colours become ``⌈log₂(C+1)⌉`` layers of vertex copies joined by
  vertical edges (nauty's own recipe for edge-coloured graphs), so the result is exact
  for any number of colours.
- ``"python"``: our own individualisation-refinement search: colour refinement (1-WL,
  edge colours and directions counted) to an equitable partition, individualise a vertex
  of the first smallest non-singleton cell, refine again, down to discrete partitions
  (leaves); the canonical leaf is the least by (cell sizes along the path, relabelled
  edge matrix); two leaves with equal relabelled matrices give an automorphism.
  Subtrees are pruned by the automorphisms found so far (children in one orbit of the
  pointwise stabiliser of the path are equivalent) and by the path invariants, and a
  leaf equivalent to the first leaf sends the search back to the level where its path
  left the first path (McKay's argument: the automorphisms found then generate the
  whole group).

``"auto"`` uses pynauty where it is installed, else the python search. Permutations
are numpy ``[n]`` integer arrays ``p`` (vertex ``j`` goes to ``p[j]``), composed as
``compose(p, q) = p[q]`` (``q`` first), as in :mod:`symtrain.groups.permutation`.

>>> cycle = np.zeros((6, 6), dtype=np.int64)
>>> for i in range(6):
...     cycle[i, (i + 1) % 6] = cycle[(i + 1) % 6, i] = 1
>>> canon = canonical_labelling(cycle, np.zeros(6, dtype=np.int64), backend="python")
>>> canon.group.order
12
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..registry import ArgumentError

BACKENDS = ("auto", "pynauty", "python")


def pynauty_available() -> bool:
    """Whether the ``pynauty`` package (nauty) can be imported."""
    return importlib.util.find_spec("pynauty") is not None


def resolve_backend(backend: str) -> str:
    """``"pynauty"`` or ``"python"``: the backend that ``backend`` names here."""
    if backend not in BACKENDS:
        raise ArgumentError("backend", f"must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "pynauty" if pynauty_available() else "python"
    if backend == "pynauty" and not pynauty_available():
        raise ArgumentError("backend", "'pynauty' needs the pynauty package (pip install "
                            "'symtrain[graphs]'); 'python' needs nothing")
    return backend


def colour_ranks(values: np.ndarray) -> np.ndarray:
    """Dense ranks of the rows of ``values`` (``[m, F]`` or ``[m]``) in lexicographic
    order: equal rows get equal ranks, and the ranks depend only on the values, not on
    where the rows are (so they are invariant colours)."""
    v = np.asarray(values)
    if v.ndim == 1:
        return np.unique(v, return_inverse=True)[1].reshape(-1).astype(np.int64)
    if v.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(v.reshape(v.shape[0], -1), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def compose(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p ∘ q`` (``q`` first) for permutations ``[..., n]``."""
    if p.ndim == 1:
        return p[q]
    return np.take_along_axis(p, q, -1) if p.ndim == q.ndim else p[..., q]


def invert(p: np.ndarray) -> np.ndarray:
    inv = np.empty_like(p)
    inv[p] = np.arange(p.shape[-1])
    return inv


# --- the automorphism group: a stabiliser chain -----------------------------------------
@dataclass
class PermutationChain:
    """A permutation group on ``n`` points as a base and transversals (Schreier–Sims):
    every element is ``u_0 ∘ u_1 ∘ … ∘ u_{m−1}`` for exactly one choice of ``u_i`` in
    transversal ``i``, so the order is the product of the transversal sizes, elements are
    listed as all products and drawn uniformly by drawing each ``u_i`` uniformly."""

    n: int
    base: list[int] = field(default_factory=list)
    transversals: list[np.ndarray] = field(default_factory=list)  # each [t_i, n]

    @classmethod
    def from_generators(cls, n: int, generators) -> "PermutationChain":
        """Deterministic Schreier–Sims on ``generators`` (``[m, n]`` or a list of ``[n]``)."""
        ident = np.arange(n)
        gens = [np.asarray(g, dtype=np.int64) for g in generators]
        gens = [g for g in gens if not np.array_equal(g, ident)]
        base: list[int] = []
        strong: list[np.ndarray] = []

        def moved(g):
            return int(np.flatnonzero(g != ident)[0])

        for g in gens:
            if all(g[b] == b for b in base):
                base.append(moved(g))
            strong.append(g)
        if not base:
            return cls(n)

        def level_gens(i):
            return [s for s in strong if all(s[b] == b for b in base[:i])]

        def orbit(i):
            reps = {base[i]: ident}
            queue = [base[i]]
            gens_i = level_gens(i)
            while queue:
                p = queue.pop()
                for s in gens_i:
                    q = int(s[p])
                    if q not in reps:
                        reps[q] = compose(s, reps[p])
                        queue.append(q)
            return reps

        trans = [orbit(i) for i in range(len(base))]

        inverses: dict[bytes, np.ndarray] = {}

        def inv(u):
            key = u.tobytes()
            if key not in inverses:
                inverses[key] = invert(u)
            return inverses[key]

        def strip(h, start):
            for lvl in range(start, len(base)):
                beta = int(h[base[lvl]])
                if beta not in trans[lvl]:
                    return h, lvl
                h = inv(trans[lvl][beta])[h]
            return h, len(base)

        i = len(base) - 1
        while i >= 0:
            again = False
            for beta, u in list(trans[i].items()):
                for s in level_gens(i):
                    y = inv(trans[i][int(s[beta])])[s[u]]
                    h, j = strip(y, i + 1)
                    if j < len(base) or not np.array_equal(h, ident):
                        if j == len(base):
                            base.append(moved(h))
                            trans.append({})
                        strong.append(h)
                        for lvl in range(i + 1, j + 1):
                            trans[lvl] = orbit(lvl)
                        i, again = j, True
                        break
                if again:
                    break
            if not again:
                i -= 1
        return cls(n, base, [np.stack([trans[i][p] for p in sorted(trans[i])]) for i in range(len(base))])

    @classmethod
    def symmetric_blocks(cls, n: int, blocks) -> "PermutationChain":
        """The direct product of the symmetric groups of disjoint ``blocks`` (lists of
        points): the stabiliser of a set with repeated rows. Built directly (base: every
        point of a block but its last; transversal: the transpositions)."""
        ident = np.arange(n)
        base, trans = [], []
        for block in blocks:
            block = list(block)
            for a in range(len(block) - 1):
                reps = []
                for b in block[a:]:
                    t = ident.copy()
                    t[block[a]], t[b] = b, block[a]
                    reps.append(t)
                base.append(block[a])
                trans.append(np.stack(reps))
        return cls(n, base, trans)

    @property
    def order(self) -> int:
        return math.prod(len(t) for t in self.transversals)

    def elements(self) -> np.ndarray:
        """Every element, ``[order, n]`` (the identity first)."""
        out = np.arange(self.n)[None]
        for t in reversed(self.transversals):
            out = t[:, out].reshape(-1, self.n)  # u ∘ e for every u, then every e
        return out

    def sample(self, k: int, generator: torch.Generator | None = None) -> np.ndarray:
        """``k`` independent uniform elements ``[k, n]`` (random transversal choices)."""
        out = np.broadcast_to(np.arange(self.n), (k, self.n)).copy()
        for t in self.transversals:
            pick = torch.randint(len(t), (k,), generator=generator).numpy()
            out = np.take_along_axis(out, t[pick], 1)  # out ∘ u
        return out

    def contains(self, p: np.ndarray) -> bool:
        h = np.asarray(p)
        for b, t in zip(self.base, self.transversals, strict=False):
            hits = np.flatnonzero(t[:, b] == h[b])
            if hits.size == 0:
                return False
            h = compose(invert(t[hits[0]]), h)
        return bool(np.array_equal(h, np.arange(self.n)))


@dataclass
class Canonical:
    """A canonical labelling and the automorphism group of one coloured graph.

    ``labelling[v]``: the position of vertex ``v`` in the canonical graph;
    ``generators``: ``[m, n]`` automorphisms of the input (``E[p[i], p[j]] = E[i, j]``);
    ``group``: their :class:`PermutationChain`; ``backend``: which backend ran."""

    labelling: np.ndarray
    generators: np.ndarray
    group: PermutationChain
    backend: str
    certificate: bytes = b""


def relabel(edges: np.ndarray, labelling: np.ndarray) -> np.ndarray:
    """The graph with vertex ``v`` moved to position ``labelling[v]``."""
    inv = invert(labelling)
    return edges[np.ix_(inv, inv)]


def _check_graph(edges, colours) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(edges)
    c = np.asarray(colours)
    if e.ndim != 2 or e.shape[0] != e.shape[1]:
        raise ArgumentError("edges", f"must be a square [n, n] matrix, got shape {e.shape}")
    if c.shape != (e.shape[0],):
        raise ArgumentError("colours", f"must have shape ({e.shape[0]},), got {c.shape}")
    if not (np.issubdtype(e.dtype, np.integer) and np.issubdtype(c.dtype, np.integer)):
        raise ArgumentError("edges, colours", "must be integer colour codes (use colour_ranks "
                            f"on float values), got {e.dtype} and {c.dtype}")
    if (e < 0).any() or (c < 0).any():
        raise ArgumentError("edges, colours", "must be non-negative (0: no edge)")
    return e.astype(np.int64), colour_ranks(c)


def canonical_labelling(edges, colours, backend: str = "auto") -> Canonical:
    """Canonical labelling and automorphism group of a coloured graph (see the module
    docstring). ``edges``: ``[n, n]`` int colours (0: no edge); ``colours``: ``[n]``."""
    e, c = _check_graph(edges, colours)
    n = e.shape[0]
    backend = resolve_backend(backend)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Canonical(empty, np.zeros((0, 0), dtype=np.int64), PermutationChain(0), backend)
    if backend == "pynauty":
        lab, gens = _pynauty(e, c)
    else:
        lab, gens = _Search(e).run(c)
    gens = np.asarray(gens, dtype=np.int64).reshape(-1, n)
    cert = np.sort(c).tobytes() + relabel(e, lab).tobytes()
    return Canonical(lab, gens, PermutationChain.from_generators(n, gens), backend, cert)


# --- pynauty ----------------------------------------------------------------------------
def _pynauty(e: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import pynauty

    n = e.shape[0]
    values = np.unique(e[e > 0])
    code = np.searchsorted(values, e) + 1
    code[e == 0] = 0  # edge colours 1..C
    layers = max(1, int(len(values)).bit_length())
    directed = not np.array_equal(e, e.T)
    adjacency: dict[int, list[int]] = {v: [] for v in range(n * layers)}
    for layer in range(layers):
        hit = (code >> layer) & 1
        for i, j in zip(*np.nonzero(hit), strict=False):
            if directed or i < j:
                adjacency[layer * n + int(i)].append(layer * n + int(j))
        if layer + 1 < layers:
            for v in range(n):
                adjacency[layer * n + v].append((layer + 1) * n + v)
    loops = np.diag(code)  # self-loops: nauty ignores them, so they colour the vertex
    colour = colour_ranks(np.stack([c, loops], 1))
    cells = [set(int(layer * n + v) for v in np.flatnonzero(colour == k))
             for layer in range(layers) for k in range(int(colour.max()) + 1)]
    g = pynauty.Graph(n * layers, directed=directed, adjacency_dict=adjacency, vertex_coloring=cells)
    gens = [np.asarray(p[:n]) for p in pynauty.autgrp(g)[0]]
    order = np.asarray(pynauty.canon_label(g))[:n]  # order[i]: the vertex at position i
    return invert(order), (np.stack(gens) if gens else np.zeros((0, n), dtype=np.int64))


# --- our own search ---------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 of int64 codes, elementwise (uint64, wrapping)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class _Search:
    """Individualisation-refinement (see the module docstring)."""

    def __init__(self, e: np.ndarray):
        self.e = e
        self.n = e.shape[0]
        self.directed = not np.array_equal(e, e.T)
        loops = np.diag(e)
        self.loops = loops if loops.any() else None
        self.gens: list[np.ndarray] = []
        # (labelling, certificate, invariants) of the first and of the best leaf found
        self.first: tuple[Any, bytes, Any] | None = None
        self.best: tuple[Any, bytes, Any] | None = None
        self.first_path: list[int] = []

    def refine(self, colours: np.ndarray) -> np.ndarray:
        """An equitable refinement, cells ordered by (old cell, signature): each vertex's
        signature hashes the multiset of (edge colour, neighbour's cell) pairs (a sum of
        a fixed 64-bit mix, so a function of the multiset only). A hash collision can only
        leave two cells merged, which keeps the refinement invariant to relabelling (all
        the search needs); individualisation then separates them."""
        n = self.n
        k = int(colours.max()) + 1
        scale = np.int64(n + 1)
        while k < n:
            sig = _mix(self.e * scale + colours[None, :]).sum(1)
            if self.directed:
                sig = sig ^ _mix(self.e.T * scale + colours[None, :] + np.int64(1 << 40)).sum(1)
            new = colour_ranks(colours.astype(np.uint64) << np.uint64(32) | (sig >> np.uint64(32)))
            k_new = int(new.max()) + 1
            colours = new
            if k_new == k:
                break
            k = k_new
        return colours

    def run(self, colours: np.ndarray):
        start = colours if self.loops is None else colour_ranks(np.stack([colours, self.loops], 1))
        root = self.refine(start)
        self._visit(root, [], (np.bincount(root).tobytes(),))
        assert self.best is not None  # the search always reaches a leaf
        return self.best[0], (np.stack(self.gens) if self.gens else np.zeros((0, self.n), np.int64))

    def _orbits(self, path):
        """Orbit representatives of the group generated by the automorphisms found so far
        that fix ``path`` pointwise (a union-find)."""
        parent = np.arange(self.n)

        def find(a):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for g in self.gens:
            if all(g[v] == v for v in path):
                for a, b in enumerate(g):
                    ra, rb = find(a), find(int(b))
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
        return find

    def _visit(self, colours, path, invariants):
        n = self.n
        sizes = np.bincount(colours)
        if len(sizes) == n:
            return self._leaf(colours, path, invariants)
        depth = len(path)
        small = np.where(sizes > 1, sizes, n + 1)
        cell = np.flatnonzero(colours == int(np.argmin(small)))
        tried: list[int] = []
        find: Callable[[int], int] | None = None
        known = -1
        for v in cell:
            v = int(v)
            if tried:
                if known != len(self.gens):
                    find, known = self._orbits(path), len(self.gens)
                assert find is not None  # set above: tried is non-empty only after a first branch
                root = find(v)
                if any(find(t) == root for t in tried):
                    continue
            tried.append(v)
            child = colours * 2 + 1
            child[v] -= 1
            child = self.refine(colour_ranks(child))
            inv = invariants + (np.bincount(child).tobytes(),)
            if not self._may_hold(inv):
                continue
            back = self._visit(child, path + [v], inv)
            if back is not None and back < depth:
                return back
        return None

    def _may_hold(self, inv) -> bool:
        """Whether a node with these path invariants may hold a leaf equivalent to the
        first leaf or better than the best one."""
        first, best = self.first, self.best
        if first is None or best is None:
            return True
        m = len(inv)
        if inv == first[2][:m]:
            return True
        return inv <= best[2][:m]

    def _leaf(self, colours, path, invariants):
        cert = relabel(self.e, colours).tobytes()
        if self.first is None:
            self.first = self.best = (colours, cert, invariants)
            self.first_path = path
            return None
        first, best = self.first, self.best
        assert best is not None  # set together with first
        if cert == first[1] and invariants == first[2]:
            self.gens.append(compose(invert(first[0]), colours))
            return next((i for i, (a, b) in enumerate(zip(path, self.first_path, strict=False)) if a != b), len(path))
        if cert == best[1] and invariants == best[2]:
            self.gens.append(compose(invert(best[0]), colours))
            return None
        if (invariants, cert) < (best[2], best[1]):
            self.best = (colours, cert, invariants)
        return None
