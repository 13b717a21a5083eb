"""The symmetric group S_n, permuting the n nodes of a set or graph.

Elements are ``[B, n]`` long tensors ``p``, a bijection of ``{0..n-1}``: node ``j`` is
moved to position ``p[j]``. On node features this is ``(g·x)[p[j]] = x[j]``, i.e.
``g·x = P x`` with the permutation matrix ``P[p[j], j] = 1``; on an adjacency matrix it
is ``P A Pᵀ``. Composition is ``compose(p, q) = p[q]`` (``q`` first).

The size n is usually given by the data (``SymmetricGroup()``, written ``S_n``) rather
than fixed (``SymmetricGroup(5)``, written ``S5``). Batches of graphs of different
sizes are padded and carry a mask; permutations then only move the real nodes among
the real positions and leave padding in place.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..checks import check_prefix_mask
from ..errors import ShapeError
from .base import Group, GroupContext, default_float
from .registry import register_group

MAX_ENUMERATED = 40320  # 8!


class TensorMemo:
    """The last few results of a function of one tensor, keyed by the tensor object itself
    (not its values): a hit needs the very object, unchanged since (its in-place version
    counter, and the result's, as they were). Bounded (``size`` entries, oldest dropped,
    so at most ``size`` results are kept alive) and holding its keys weakly; bypassed
    while tracing or compiling, where tensor identity means nothing, and for inference
    tensors."""

    def __init__(self, size: int = 8):
        self._entries: deque[tuple[weakref.ref, Any, int, Tensor, int]] = deque(maxlen=size)

    @staticmethod
    def _off(*tensors: Tensor) -> bool:
        """No memo while tracing or compiling, nor for inference tensors (created under
        ``torch.inference_mode``), which keep no version counter to tell a change by."""
        return torch.jit.is_tracing() or torch.compiler.is_compiling() or any(t.is_inference() for t in tensors)

    def get(self, key: Tensor, tag: Any = None) -> Tensor | None:
        """The result remembered for ``key`` (and ``tag``, any further argument the
        function took), or ``None``."""
        if self._off(key):
            return None
        for ref, entry_tag, version, value, value_version in reversed(list(self._entries)):
            if ref() is key and entry_tag == tag:
                if key._version == version and value._version == value_version:
                    return value
                return None
        return None

    def put(self, key: Tensor, value: Tensor, tag: Any = None) -> None:
        if not self._off(key, value):
            self._entries.append((weakref.ref(key), tag, key._version, value, value._version))


#: Inverses of the permutations inverted last, both ways: a symmetrizer inverts its
#: elements once (``g⁻¹``) and every field's action, and the output's, then needs the
#: inverse of that again; the memo makes those free within a forward.
_INVERSES = TensorMemo()


def invert_permutation(p: Tensor) -> Tensor:
    """``[B, n] -> [B, n]`` inverse permutations (a scatter, no sort; remembered for the
    last few tensors inverted, see :class:`TensorMemo`)."""
    inv = _INVERSES.get(p)
    if inv is not None:
        return inv
    inv = torch.empty_like(p)
    ar = torch.arange(p.shape[-1], device=p.device).expand_as(p)
    inv.scatter_(-1, p, ar)
    _INVERSES.put(p, inv)
    _INVERSES.put(inv, p)
    return inv


def permutations_from_scores(scores: Tensor, mask: Tensor | None = None) -> Tensor:
    """The permutation that moves the real nodes into decreasing order of ``scores``
    (``[B, n]``) among the real positions; padded positions stay fixed.

    The node with the k-th largest score goes to the k-th real position. Equivariant:
    permuting the scores permutes the result accordingly (for distinct scores).
    """
    n = scores.shape[-1]
    if mask is None:
        order = torch.argsort(scores, dim=-1, descending=True)  # order[k] = node of rank k
        return invert_permutation(order)
    ar = torch.arange(n, device=scores.device).expand_as(scores)
    big = torch.finfo(scores.dtype).max
    # Real nodes by decreasing score, then padding in its own order.
    key = torch.where(mask, -scores, torch.full_like(scores, big))
    order = torch.argsort(key, dim=-1, stable=True)
    # The real positions in increasing order, then the padded ones.
    slots = torch.argsort(torch.where(mask, ar.to(scores.dtype), ar.to(scores.dtype) + n), dim=-1)
    p = ar.clone()
    return p.scatter_(-1, order, slots)


@dataclass(frozen=True)
class SymmetricGroup(Group):
    """S_n. ``n=None`` takes the size from the data each call."""

    n: int | None = None

    permutes_nodes = True

    @property
    def name(self) -> str:  # type: ignore[override]
        return "S_n" if self.n is None else f"S{self.n}"

    @property
    def num_nodes(self) -> int | None:
        return self.n

    def permutation(self, g):
        return g

    def compatible(self, other) -> bool:
        """``S_n`` and ``S5`` accept each other's elements (the size comes from the data)."""
        if not other.permutes_nodes or len(other.factors) != 1:
            return False
        return self.n is None or other.num_nodes is None or self.n == other.num_nodes

    @property
    def is_finite(self) -> bool:
        return True

    @property
    def order(self) -> int | None:
        return None if self.n is None else math.factorial(self.n)

    def size(self, context: GroupContext | None) -> int:
        n = context.num_nodes if context is not None else None
        if self.n is not None and n is not None and n != self.n:
            raise ShapeError(f"{self} acts on {self.n} nodes but the data has {n}")
        n = self.n if self.n is not None else n
        if n is None:
            raise ValueError("S_n needs the number of nodes: pass data through an action that "
                             "has a node axis (Points, Nodes, Adjacency, Graph) or use SymmetricGroup(n)")
        return n

    def identity(self, batch=1, *, context=None, device=None, dtype=None):
        n = self.size(context)
        return torch.arange(n, device=device).expand(batch, n).clone()

    def compose(self, g, h):
        return torch.gather(g, -1, h)

    def inverse(self, g):
        return invert_permutation(g)

    def sample(self, batch, *, context=None, generator=None, device=None, dtype=None):
        n = self.size(context)
        mask = None if context is None else context.mask
        if mask is not None:
            if mask.shape != (batch, n):
                raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {(batch, n)}")
            check_prefix_mask(mask)
            device = mask.device
        scores = torch.rand(batch, n, generator=generator, device=device)
        return permutations_from_scores(scores, mask)

    def elements(self, *, context=None, device=None, dtype=None):
        n = self.size(context)
        if context is not None and context.mask is not None and not bool(context.mask.all()):
            raise ValueError("exact enumeration of S_n needs graphs of one size; this batch is "
                             "padded (mask has False entries): sample permutations instead")
        if math.factorial(n) > MAX_ENUMERATED:
            raise ValueError(f"S_{n} has {math.factorial(n)} elements, too many to enumerate "
                             f"(limit {MAX_ENUMERATED}); use Monte-Carlo sampling (samples=K), "
                             "frames or probabilistic symmetrization")
        perms = list(itertools.permutations(range(n)))
        return torch.tensor(perms, dtype=torch.long, device=device)

    def matrix(self, g, dtype=None):
        """Permutation matrices ``[B, n, n]`` with ``P[p[j], j] = 1``."""
        eye = torch.eye(g.shape[-1], device=g.device, dtype=default_float(dtype))
        return eye[g].transpose(-1, -2)

    def allclose(self, g, h, atol=0.0):
        return (g == h).all(-1)


@register_group(r"S_?n", "S_n")
def _sn() -> SymmetricGroup:
    return SymmetricGroup()


@register_group(r"S(\d+)", "S5")
def _sk(n: str) -> SymmetricGroup:
    return SymmetricGroup(int(n))
