"""Direct products G_1 × … × G_m (e.g. S_n × O(3)): elements are tuples of factor
elements; every operation is done factor by factor."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Group, element_repeat, element_tile


@dataclass(frozen=True, init=False)
class DirectProduct(Group):
    groups: tuple[Group, ...]

    def __init__(self, *groups: Group):
        flat: list[Group] = []
        for g in groups:
            flat.extend(g.factors)
        if len(flat) < 2:
            raise ValueError("a direct product needs at least two factors")
        object.__setattr__(self, "groups", tuple(flat))

    @property
    def name(self) -> str:  # type: ignore[override]
        return " x ".join(str(g) for g in self.groups)

    @property
    def factors(self):
        return self.groups

    def split(self, g):
        if not isinstance(g, tuple) or len(g) != len(self.groups):
            raise TypeError(f"an element of {self} is a tuple of {len(self.groups)} factor elements")
        return g

    def join(self, parts):
        if len(parts) != len(self.groups):
            raise TypeError(f"an element of {self} has {len(self.groups)} components, got {len(parts)}")
        return tuple(parts)

    def compatible(self, other) -> bool:
        theirs = other.factors
        return len(theirs) == len(self.groups) and all(
            a.compatible(b) for a, b in zip(self.groups, theirs, strict=True))

    @property
    def is_finite(self) -> bool:
        return all(g.is_finite for g in self.groups)

    @property
    def order(self):
        out = 1
        for g in self.groups:
            if g.order is None:
                return None
            out *= g.order
        return out

    def identity(self, batch=1, **kw):
        return tuple(g.identity(batch, **kw) for g in self.groups)

    def compose(self, g, h):
        return tuple(G.compose(a, b) for G, a, b in zip(self.groups, g, h, strict=True))

    def inverse(self, g):
        return tuple(G.inverse(a) for G, a in zip(self.groups, g, strict=True))

    def sample(self, batch, **kw):
        return tuple(g.sample(batch, **kw) for g in self.groups)

    def elements(self, **kw):
        """Cartesian product, the first factor varying slowest."""
        parts = [g.elements(**kw) for g in self.groups]
        sizes = [p[0].shape[0] if isinstance(p, tuple) else p.shape[0] for p in parts]
        out = []
        for i, part in enumerate(parts):
            inner = 1
            for s in sizes[i + 1:]:
                inner *= s
            outer = 1
            for s in sizes[:i]:
                outer *= s
            out.append(element_tile(element_repeat(part, inner), outer))
        return tuple(out)

    def matrix(self, g, dtype=None):
        mats = [G.matrix(a, dtype) for G, a in zip(self.groups, g, strict=True)]
        return torch.vmap(torch.block_diag)(*mats)

    def allclose(self, g, h, atol=1e-5):
        out = None
        for G, a, b in zip(self.groups, g, h, strict=True):
            c = G.allclose(a, b, atol)
            out = c if out is None else out & c
        return out
