"""Minimal frames for S_n (Lin et al., ICML 2024, "minimal frame averaging"): the
canonical order of the nodes composed with every automorphism of the input.

For an input ``x`` with node data, the frame is the coset

    F(x) = { g : g⁻¹·x is the canonical form of x } = { a ∘ λ(x)⁻¹ : a ∈ Aut(x) },

where ``λ(x)`` is a canonical labelling (vertex ``v`` goes to position ``λ[v]``). Since the
canonical form of ``h·x`` is that of ``x``, ``F(h·x) = h·F(x)``: averaging over it is
exactly equivariant. On an input without symmetry (``Aut(x)`` trivial) it is one element,
so the backbone runs once; on a symmetric one it is ``|Aut(x)|`` elements, the input's
stabiliser, and nothing is refused.

What the canonical form is computed from (:func:`node_invariants`):

- **sets** (no adjacency): the rows of node data sorted lexicographically; identical rows
  make ``Aut(x)`` the product of the symmetric groups of the tied rows;
- **graphs** (dense adjacency, PyG ``edge_index``): the graph with vertex colours from the
  node data and edge colours from the adjacency values, labelled by nauty or our own
  search (:mod:`symtrain.groups.automorphisms`, option ``backend``);
- **S_n × O(d), S_n × E(d), S_n × SO(d)**: the node data must not move with the other
  factors, so positions and vectors enter only through their inner products: the complete
  graph of the Gram matrix of the (centred, under translations) points and vectors,
  rounded to multiples of ``gram_round`` (MFA rounds to 0.1), with the rounded norms as
  vertex colours. The rotation part of the frame is then computed per order by the
  rotation factor's frame (see :func:`symtrain.symmetrize.frames.frame_elements`).

Rounding makes the frame a discontinuous function of the input: two inner products on
either side of a rounding boundary (``(k + ½)·gram_round``) give different graphs, and a
rotation that moves an inner product across a boundary by float error (~1e-7 of its
size) changes the frame. It is exactly equivariant wherever no inner product is within
float error of a boundary, i.e. almost surely on random inputs; a smaller ``gram_round``
gives fewer ties (smaller frames on near-symmetric inputs), a larger one absorbs noise in
nearly symmetric inputs (a noisy square still gets its 8 symmetries).

Automorphism groups larger than ``max_elements`` are **sampled**: ``samples`` elements drawn
uniformly from ``Aut(x)`` (Schreier–Sims transversals), so the average becomes a
Monte-Carlo estimate of the frame average (equivariant in distribution; its error falls
as ``1/√samples``), and a :class:`MonteCarloFrameWarning` says so. The frame records
which inputs it drew (``sampled``), and a wrapper over it is then stochastic, with a
fixed draw for its exact check (:mod:`~symtrain.symmetrize.sampled_frames`).
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..actions.base import cat_features
from ..checks import check_finite, check_prefix_mask, input_is_checked
from ..errors import ShapeError, UnsupportedGroupError
from ..groups.automorphisms import (
    BACKENDS,
    PermutationChain,
    canonical_labelling,
    colour_ranks,
    compose,
    invert,
    resolve_backend,
)
from ..groups.base import Group, GroupContext
from ..registry import ArgumentError
from ..symmetry import Symmetry
from .frames import Frame, _float, lexsort_rows


class MonteCarloFrameWarning(UserWarning):
    """A frame too large to enumerate was sampled: the average over it is a Monte-Carlo
    estimate (equivariant in distribution only)."""


def node_invariants(factor: Group, symmetry: Symmetry, x: Any, context: GroupContext,
                    gram_round: float = 0.1) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The node data an S_n frame may use: invariant to every other factor of the group.

    Returns ``(nodes [B, N, F], edges [B, N, N, E] or None, mask [B, N] or None)``:
    ``nodes`` holds the node features, and the points and vectors themselves when no other
    factor moves them; ``edges`` the adjacency and, when another factor rotates the points
    (``vector_dim``), the Gram matrix of the (centred) points and vectors rounded to
    multiples of ``gram_round`` (its diagonal, the rounded squared norms, goes to
    ``nodes``). Every value is an exact function of the input: equal numbers mean equal
    colours."""
    view = symmetry.input.node_view(x, context)
    others = [f for f in symmetry.group.factors if f is not factor]
    rotating = any(f.vector_dim is not None for f in others)
    translating = any(f.has_translations for f in others)
    mask = view.mask if view.mask is not None else context.mask
    nodes, edges = [], []
    if view.features is not None:
        nodes.append(view.features.detach())
    if view.adjacency is not None:
        edges.append(view.adjacency.detach()[..., None])
    if view.edge_features is not None:  # typed / weighted edges: their features colour them
        edges.append(view.edge_features.detach().reshape(*view.edge_features.shape[:3], -1))
    fields = ([view.points] if view.points is not None else []) + list(view.vectors)
    fields = [f.detach() for f in fields]
    if fields and translating and view.points is not None:
        p = fields[0]
        if context.centroid is not None:
            centre = context.centroid.to(p.dtype)
        else:
            w = torch.ones(p.shape[:2], dtype=p.dtype, device=p.device) if mask is None \
                else mask.to(p.dtype)
            centre = (p * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)
        fields[0] = p - centre[:, None, :]
    if fields and rotating:
        if not gram_round > 0:
            raise ArgumentError("gram_round", f"must be positive, got {gram_round!r}")
        f = torch.stack(fields, 2).to(torch.float64)  # [B, N, m, d]
        if not input_is_checked():
            check_finite(f, "the points an S_n frame is computed from")
        b, n, m, d = f.shape
        flat = f.reshape(b, n * m, d)  # one batched product for every pair of vectors
        gram = torch.bmm(flat, flat.transpose(1, 2)).view(b, n, m, n, m)
        gram = torch.round(gram.transpose(2, 3) / gram_round).reshape(b, n, n, m * m)  # [B, N, N, m²]
        nodes.append(torch.diagonal(gram, 0, 1, 2).transpose(1, 2))
        eye = torch.eye(n, dtype=torch.bool, device=gram.device)
        edges.append(gram.masked_fill(eye[None, :, :, None], 0.0))
    elif fields:
        nodes += [f.reshape(*f.shape[:2], -1) for f in fields]
    if not nodes and not edges:
        raise UnsupportedGroupError("no node data in the input to order the nodes by (node "
                                    "features, an adjacency, points or vectors)")
    b, n = context.batch_size, context.num_nodes
    ref = (nodes or edges)[0]
    dtype = torch.float64
    node_t = cat_features([t.to(dtype) for t in nodes]) if nodes else \
        torch.zeros(b, n, 1, dtype=dtype, device=ref.device)
    edge_t = cat_features([t.to(dtype) for t in edges])
    return node_t, edge_t, mask


_M31 = (1 << 31) - 1


def _hash31(x: Tensor) -> Tensor:
    """A fixed integer mix of int64 values into ``[0, 2³¹)``, elementwise (no overflow:
    every product stays below 2⁶²)."""
    x = (x ^ (x >> 31)) & _M31
    x = (x * 0x2C1B3C6D) & _M31
    x = x ^ (x >> 15)
    x = (x * 0x297A2D39) & _M31
    return x ^ (x >> 16)


def _row_hash(values: Tensor) -> Tensor:
    """``[..., F]`` float values → ``[...]`` hashes of the rows (equal rows, equal hashes)."""
    bits = (values.to(torch.float64) + 0.0).view(torch.int64)  # + 0.0: −0.0 becomes 0.0
    f = bits.shape[-1]
    if f > 1024:
        raise ShapeError(f"at most 1024 values per node or edge can be hashed, got {f}")
    weights = ((torch.arange(f, device=bits.device) * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFF) | 1
    return _hash31((_hash31(bits) * weights).sum(-1))  # position-weighted: order matters


def _ranks(keys: Tensor) -> Tensor:
    """Dense ranks ``[B, N]`` of int64 ``keys`` within each row (equal keys, equal ranks)."""
    values, order = keys.sort(1)
    new = torch.ones_like(values)
    new[:, 1:] = (values[:, 1:] != values[:, :-1]).long()
    return torch.empty_like(new).scatter_(1, order, new.cumsum(1) - 1)


def _lex_ranks(rows: Tensor, pad: Tensor | None) -> Tensor:
    """Dense ranks ``[B, N]`` of the rows ``[B, N, F]`` within each sample in lexicographic
    order of their values, padding (``pad`` ``[B, N]``, 1 for padded slots; ``None``: no
    padding) last. Ordered
    by value, not by a hash of the bits: features that are invariant only up to float
    rounding (computed invariants) keep their order under the other factors."""
    b, n, f = rows.shape
    order = lexsort_rows(rows)
    if pad is not None:  # padding last: one more stable pass, and a key column for the ties
        order = order.gather(1, torch.argsort(pad.gather(1, order), dim=1, stable=True))
        rows = torch.cat([pad[..., None].to(rows.dtype), rows], -1)
    ranked = rows.gather(1, order[..., None].expand(b, n, rows.shape[-1]))
    new = torch.ones(b, n, dtype=torch.long, device=rows.device)
    new[:, 1:] = (ranked[:, 1:] != ranked[:, :-1]).any(-1).long()
    return torch.empty_like(new).scatter_(1, order, new.cumsum(1) - 1)


def refine_batched(nodes: Tensor, edges: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Colour refinement (1-WL with edge colours) of a batch of coloured graphs at once.

    ``nodes``: ``[B, N, F]`` vertex data; ``edges``: ``[B, N, N, E]`` edge data; ``mask``:
    ``[B, N]`` or ``None``. Returns the stable colours ``[B, N]`` (dense ranks per graph,
    padding last) and ``discrete`` ``[B]``: whether every real vertex has its own colour.

    Colours start as the lexicographic ranks of the vertex data (by value, so node
    features that are invariant only up to float rounding keep their order), then each
    round ranks (old colour, a hash of the multiset of (edge colour, neighbour colour)
    pairs), edge colours being hashes of the (exact: adjacency, edge features, rounded
    inner products) edge values. Every step is a function of values only, so the colours
    are invariant to relabelling (a hash collision can only leave two cells merged). A
    discrete graph therefore has no automorphism but the identity, and its colours are a
    canonical labelling."""
    b, n, _ = nodes.shape
    colours = _lex_ranks(nodes, None if mask is None else (~mask).long())
    real = torch.full((b,), n, device=nodes.device) if mask is None else mask.sum(1)
    padded = (real < n).long()
    discrete = (colours.amax(1) + 1 - padded) == real
    if bool(discrete.all()):  # the node data alone tell every node apart (one host read)
        return colours, discrete
    target = int((real + padded).sum())  # the colour count of discrete partitions
    count = int((colours.amax(1) + 1).sum())
    if count < target:  # some graph needs its edges
        codes = _row_hash(edges) * (n + 1)
        directed = not torch.equal(codes, codes.transpose(1, 2))
    for _ in range(n if count < target else 0):
        sig = _hash31(_hash31(codes + colours[:, None, :]).sum(-1))
        if directed:
            back = _hash31(_hash31(codes.transpose(1, 2) + colours[:, None, :]).sum(-1))
            sig = _hash31(sig * 1000003 + back)
        colours = _ranks((colours << 31) + sig)
        new = int((colours.amax(1) + 1).sum())
        if new == count:
            break
        count = new
        if count == target:
            break
    discrete = (colours.amax(1) + 1 - padded) == real
    return colours, discrete


class MinimalPermutationFrame(Frame):
    """The minimal frame of S_n: a canonical order of the nodes composed with the
    automorphisms of the input (see the module docstring).

    Args:
        backend: canonical labelling of graphs: ``"auto"`` (nauty through pynauty where it
            is installed, else ``"python"``), ``"pynauty"`` or ``"python"`` (our own
            colour refinement + individualisation-refinement search). Sets need neither.
        max_elements: automorphism groups up to this size are enumerated (exact frame);
            larger ones are sampled.
        samples: elements drawn uniformly from larger automorphism groups (Monte-Carlo).
        gram_round: rounding of inner products in products with O(d)/SO(d)/E(d)/SE(d).
        cache_size: canonical labellings kept per frame, keyed by the exact graph (an
            epoch over the same graphs then labels each once); 0 disables the cache.
        generator: ``torch.Generator`` for the samples (default: torch's global RNG).

    Elements are ``[B·K, N]`` permutations (padding left in place); weights ``[B, K]``,
    ``K`` the largest frame in the batch (smaller frames padded with weight 0).

    >>> import torch, symtrain as st
    >>> from symtrain.symmetrize.frames_permutation import MinimalPermutationFrame
    >>> sym = st.Symmetry("S_n", "nodes", "nodes")
    >>> x = torch.tensor([[[2.0], [0.0], [1.0]]])
    >>> g, w = MinimalPermutationFrame()(sym.group, sym, x, sym.context(x))
    >>> g.tolist(), w.shape[1]
    ([[1, 2, 0]], 1)
    """

    stabiliser_only = True
    may_sample = True  # automorphism groups past max_elements

    def __init__(self, backend: str = "auto", max_elements: int = 1024, samples: int = 128,
                 gram_round: float = 0.1, cache_size: int = 4096,
                 generator: torch.Generator | None = None):
        if backend not in BACKENDS:
            raise ArgumentError("backend", f"must be one of {BACKENDS}, got {backend!r}")
        for name, value in (("max_elements", max_elements), ("samples", samples)):
            if not (isinstance(value, int) and value >= 1):
                raise ArgumentError(name, f"must be a positive int, got {value!r}")
        if not (isinstance(gram_round, (int, float)) and gram_round > 0):
            raise ArgumentError("gram_round", f"must be a positive number, got {gram_round!r}")
        self.backend, self.max_elements, self.samples = backend, max_elements, samples
        self.gram_round, self.cache_size = float(gram_round), cache_size
        self._generator = generator
        self._cache: OrderedDict[bytes, tuple[np.ndarray, PermutationChain]] = OrderedDict()

    @property
    def backend_in_use(self) -> str:
        """The canonical-labelling backend that ``backend`` resolves to here:
        ``"pynauty"`` or ``"python"``."""
        return resolve_backend(self.backend)

    def __repr__(self):
        return (f"MinimalPermutationFrame(backend={self.backend!r}, max_elements={self.max_elements}, "
                f"samples={self.samples}, gram_round={self.gram_round})")

    # --- the frame -----------------------------------------------------------------------
    def __call__(self, factor, symmetry, x, context):
        if not factor.permutes_nodes:
            raise UnsupportedGroupError(f"MinimalPermutationFrame is for S_n, not {factor}")
        nodes, edges, mask = node_invariants(factor, symmetry, x, context, self.gram_round)
        if not input_is_checked():  # (a wrapper's forward has checked its input)
            check_finite(nodes, "the node data an S_n frame is computed from")
            if mask is not None:
                check_prefix_mask(mask)
        b, n = nodes.shape[:2]
        sizes = [n] * b if mask is None else mask.sum(1).tolist()
        ref = _float(x)
        self.sampled = torch.zeros(b, dtype=torch.bool, device=nodes.device)
        if edges is None:
            order, blocks = self._sort(nodes, mask)
            if not blocks:  # every input generic: one element each
                return order, torch.ones(b, 1, device=order.device, dtype=ref)
            labels = order.cpu().numpy()
            groups = [PermutationChain.symmetric_blocks(n, blocks.get(i, [])) for i in range(b)]
            inverse_labels = [labels[i] for i in range(b)]  # λ⁻¹: position -> node
        else:
            colours, discrete = refine_batched(nodes, edges, mask)
            order = torch.argsort(colours, dim=1, stable=True)  # λ⁻¹ where discrete
            if bool(discrete.all()):  # every graph asymmetric after refinement: one element
                return order, torch.ones(b, 1, device=order.device, dtype=ref)
            inverse_labels, groups = self._graphs(nodes, edges, sizes, discrete.tolist(), order)
        return self._assemble(inverse_labels, groups, sizes, n, nodes.device, ref)

    def _sort(self, nodes: Tensor, mask: Tensor | None):
        """Lexicographic order of the rows (padding last) and, per input with ties, the
        blocks of positions' nodes that are tied."""
        b, n, f = nodes.shape
        keys = nodes if mask is None else torch.where(mask[..., None], nodes, torch.full_like(nodes, math.inf))
        order = lexsort_rows(keys)
        ranked = keys.gather(1, order[..., None].expand(b, n, f))
        tied = (ranked[:, 1:] == ranked[:, :-1]).all(-1)
        if mask is not None:
            tied = tied & mask[:, 1:]
        blocks: dict[int, list[list[int]]] = {}
        if bool(tied.any()):
            order_np = order.cpu().numpy()
            for i, row in enumerate(tied.cpu().numpy()):
                if not row.any():
                    continue
                runs, start = [], 0
                for r in range(n):
                    if r == n - 1 or not row[r]:
                        if r > start:
                            runs.append(order_np[i, start:r + 1].tolist())
                        start = r + 1
                blocks[i] = runs
        return order, blocks

    def _graphs(self, nodes: Tensor, edges: Tensor, sizes: list[int], discrete: list[bool],
                order: Tensor):
        """Canonical labellings (as λ⁻¹) and automorphism groups of the coloured graphs:
        from the batched refinement where it is discrete (trivial group), else from the
        backend's search."""
        nodes_np = nodes.cpu().numpy()
        edges_np = edges.cpu().numpy()
        order_np = order.cpu().numpy()
        backend = resolve_backend(self.backend)
        inverse_labels, groups = [], []
        for i, m in enumerate(sizes):
            if discrete[i]:
                inverse_labels.append(order_np[i, :m])
                groups.append(PermutationChain(m))
                continue
            colours = colour_ranks(nodes_np[i, :m])
            flat = edges_np[i, :m, :m].reshape(m * m, -1)
            edge_colours = colour_ranks(flat).reshape(m, m)
            # colour 0 must mean "no edge": the all-zero edge value, where present
            zero = np.flatnonzero(~flat.any(1))
            edge_colours = edge_colours + 1
            if zero.size:
                edge_colours[edge_colours == edge_colours.reshape(-1)[zero[0]]] = 0
            key = np.int64(m).tobytes() + colours.tobytes() + edge_colours.tobytes()
            hit = self._cache.get(key)
            if hit is None:
                canon = canonical_labelling(edge_colours, colours, backend=backend)
                hit = (invert(canon.labelling), canon.group)
                if self.cache_size:
                    self._cache[key] = hit
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            inverse_labels.append(hit[0])
            groups.append(hit[1])
        return inverse_labels, groups

    def _assemble(self, inverse_labels, groups, sizes, n, device, dtype):
        """Elements ``a ∘ λ⁻¹`` for the automorphisms ``a`` (all, or sampled), padded."""
        per_input = []
        sampled = []
        for i, (lab_inv, chain) in enumerate(zip(inverse_labels, groups, strict=False)):
            m = sizes[i]
            order = chain.order
            if order <= self.max_elements:
                autos = chain.elements()
            else:
                autos = chain.sample(self.samples, self._generator)
                sampled.append((i, order))
            # automorphisms of the (unpadded) input on its first m nodes
            autos = autos[:, :m] if autos.shape[1] >= m else autos
            per_input.append(compose(autos, np.broadcast_to(lab_inv[:m], autos.shape)))
        if sampled:
            self.sampled = torch.zeros(len(per_input), dtype=torch.bool, device=device)
            self.sampled[[i for i, _ in sampled]] = True
            i, order = max(sampled, key=lambda t: t[1])
            warnings.warn(
                f"{len(sampled)} input(s) have more than max_elements={self.max_elements} "
                f"automorphisms (input {i}: {order}); averaging over {self.samples} uniform "
                "samples of each: the frame average is a Monte-Carlo estimate (equivariant in "
                "distribution, error ~ 1/sqrt(samples)), not exact", MonteCarloFrameWarning,
                stacklevel=3)
        k = max(len(p) for p in per_input)
        b = len(per_input)
        elements = np.broadcast_to(np.arange(n), (b, k, n)).copy()
        weights = np.zeros((b, k))
        for i, perms in enumerate(per_input):
            m = sizes[i]
            elements[i, :, :m] = np.concatenate([perms, np.repeat(perms[:1], k - len(perms), 0)])
            weights[i, :len(perms)] = 1.0 / len(perms)
        return (torch.as_tensor(elements.reshape(b * k, n), device=device),
                torch.as_tensor(weights, device=device, dtype=dtype))

