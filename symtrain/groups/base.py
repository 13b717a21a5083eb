"""The group contract.

A :class:`Group` is an immutable, hashable value. Its elements are *batched tensors*:
one tensor (or a tuple of tensors for products and semidirect products) whose first
dimension indexes the batch, so that composing, inverting or acting with B elements is
one tensor operation, never a Python loop.

Conventions (used by every group and action in symtrain):

- **Left action**: ``act(g, act(h, x)) == act(compose(g, h), x)``.
- **Composition** is function composition: ``compose(g, h)`` applies ``h`` first.
- **Matrices act on column vectors**: a group with a standard representation maps a
  point ``p`` (column) to ``R @ p``. Point clouds are stored as rows ``[B, N, d]``,
  so the action on data is ``x @ R.transpose(-1, -2)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Union

import torch
from torch import Tensor

from ..errors import SymmetryError, UnsupportedGroupError

Element = Union[Tensor, tuple]
Device = Union[torch.device, str, None]  # where new tensors go (None: torch's default)
DType = Optional[torch.dtype]            # their dtype (None: the default float)
"""A batch of group elements: a tensor ``[B, ...]`` or a (nested) tuple of them."""


def element_map(fn: Callable[[Tensor], Any], g: Element) -> Element:
    """Apply ``fn`` to every tensor of a (possibly nested tuple) element batch."""
    if isinstance(g, tuple):
        return tuple(element_map(fn, h) for h in g)
    return fn(g)


def element_batch_size(g: Element) -> int:
    while isinstance(g, tuple):
        g = g[0]
    return g.shape[0]


def element_take(g: Element, index: Tensor) -> Element:
    """Elements at ``index`` (a LongTensor over the batch dimension)."""
    return element_map(lambda t: t.index_select(0, index), g)


def element_repeat(g: Element, k: int) -> Element:
    """Repeat each element ``k`` times, b-major: ``[g0, g0, ..., g1, g1, ...]``."""
    return element_map(lambda t: t.repeat_interleave(k, dim=0), g)


def element_tile(g: Element, b: int) -> Element:
    """Tile the whole batch ``b`` times: ``[g0, g1, ..., g0, g1, ...]``."""
    return element_map(lambda t: t.repeat((b,) + (1,) * (t.dim() - 1)), g)


@dataclass(frozen=True)
class GroupContext:
    """What a group may need to know about the data it acts on.

    Filled by the input action (see :meth:`symtrain.actions.Action.context`):

    - ``num_nodes``: the size n of the node axis, for S_n.
    - ``mask``: ``[B, N]`` bool, True for real nodes (padded batches of different sizes).
    - ``centroid``: ``[B, d]`` mean position, used to fix the translation part of E(d).
    - ``ptr``: ``[B + 1]`` node offsets of a PyG batch (graphs stored flat).
    """

    num_nodes: int | None = None
    mask: Tensor | None = None
    centroid: Tensor | None = None
    ptr: Tensor | None = None
    batch_size: int | None = None

    def merge(self, other: "GroupContext") -> "GroupContext":
        values = {}
        for name in ("num_nodes", "mask", "centroid", "ptr", "batch_size"):
            a, b = getattr(self, name), getattr(other, name)
            if a is not None and b is not None and name in ("num_nodes", "batch_size") and a != b:
                raise ValueError(f"inputs disagree on {name}: {a} vs {b}")
            values[name] = a if a is not None else b
        return GroupContext(**values)

    def batch(self) -> int:
        """``batch_size``, which every action's ``context(x)`` sets; a ``SymmetryError``
        naming the argument when this context was built without it."""
        if self.batch_size is None:
            raise SymmetryError("GroupContext.batch_size is None: build the context with the input "
                                "action's context(x), which sets it")
        return self.batch_size

    def repeat(self, k: int) -> "GroupContext":
        """The context of the input with every sample repeated ``k`` times (b-major)."""
        if k == 1:
            return self
        mask = None if self.mask is None else self.mask.repeat_interleave(k, dim=0)
        centroid = None if self.centroid is None else self.centroid.repeat_interleave(k, dim=0)
        ptr = None
        if self.ptr is not None:
            sizes = (self.ptr[1:] - self.ptr[:-1]).repeat_interleave(k)
            ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        batch = None if self.batch_size is None else self.batch_size * k
        return replace(self, mask=mask, centroid=centroid, ptr=ptr, batch_size=batch)


class Group(ABC):
    """A group whose elements are batched tensors. Subclasses are frozen dataclasses.

    Subclasses implement ``identity``, ``compose``, ``inverse`` and ``sample``; finite
    groups also ``elements``; groups with a standard matrix representation implement
    ``matrix`` and set ``matrix_dim``.
    """

    #: Short registry-style name, e.g. ``"SO3"``; set by subclasses.
    name: str = ""
    #: Size of the standard matrix representation, or ``None`` if there is none.
    matrix_dim: int | None = None

    # --- structure -------------------------------------------------------------------
    @property
    def is_finite(self) -> bool:
        return self.order is not None

    @property
    def order(self) -> int | None:
        """Number of elements, or ``None`` for an infinite group."""
        return None

    @property
    def factors(self) -> tuple["Group", ...]:
        """The factors of a direct product; ``(self,)`` for any other group."""
        return (self,)

    def split(self, g: Element) -> tuple[Element, ...]:
        """Components of ``g`` matching :attr:`factors`."""
        return (g,)

    def part(self, g: Element, sub: "Group") -> Element:
        """The projection of ``g`` (an element of this group) onto ``sub``, a group made of
        some of this group's factors in the same order (``E3`` of ``S_n x E3``): the
        components of those factors, joined as an element of ``sub``; ``g`` itself when
        ``sub`` is this group. Raises :class:`~symtrain.errors.UnsupportedGroupError`
        when ``sub``'s factors are not among this group's."""
        if sub.compatible(self):
            return g
        mine, parts, chosen, i = self.factors, self.split(g), [], 0
        for factor in sub.factors:
            while i < len(mine) and not factor.compatible(mine[i]):
                i += 1
            if i == len(mine):
                raise UnsupportedGroupError(f"{sub} is not made of factors of {self}: its factor {factor} "
                                            f"is not among {', '.join(map(str, mine))} (in order)")
            chosen.append(parts[i])
            i += 1
        return sub.join(tuple(chosen))

    # --- algebra ---------------------------------------------------------------------
    @abstractmethod
    def identity(self, batch: int = 1, *, context: GroupContext | None = None,
                 device: Device = None, dtype: DType = None) -> Element:
        ...

    @abstractmethod
    def compose(self, g: Element, h: Element) -> Element:
        """``g ∘ h`` elementwise over the batch (``h`` acts first)."""

    @abstractmethod
    def inverse(self, g: Element) -> Element:
        ...

    @abstractmethod
    def sample(self, batch: int, *, context: GroupContext | None = None,
               generator: torch.Generator | None = None, device: Device = None, dtype: DType = None) -> Element:
        """``batch`` independent Haar-random elements.

        For groups that are not compact (translations) there is no Haar measure: see the
        subclass for what is drawn.
        """

    def elements(self, *, context: GroupContext | None = None, device: Device = None,
                 dtype: DType = None) -> Element:
        """All ``order`` elements as one batch (finite groups only)."""
        raise TypeError(f"{self} is infinite: it has no list of elements; sample from it instead")

    def matrix(self, g: Element, dtype: torch.dtype | None = None) -> Tensor:
        """Standard representation ``[B, d, d]`` (acts on column vectors)."""
        raise TypeError(f"{self} has no standard matrix representation")

    # --- what the group can do ------------------------------------------------------
    # Actions, frames, interfaces and Lie generators ask a group (factor) these
    # questions instead of testing its class. Flags default to "no"; methods raise
    # UnsupportedGroupError naming the group, so a new group that lacks a capability
    # fails loudly where it is needed.

    #: Whether elements permute the node axis of the data (``[B, n]`` long permutations,
    #: node ``j`` to position ``p[j]``); see :meth:`permutation`.
    permutes_nodes: bool = False

    @property
    def num_nodes(self) -> int | None:
        """The fixed number of nodes a node-permuting group acts on (``None``: from the data)."""
        return None

    def permutation(self, g: Element) -> Tensor:
        """``[B, n]`` node permutations of ``g`` (groups with :attr:`permutes_nodes`)."""
        raise UnsupportedGroupError(f"{self} does not permute nodes")

    @property
    def is_continuous(self) -> bool:
        """Whether the group is a Lie group of positive dimension (has :meth:`lie_algebra`)."""
        return False

    @property
    def vector_dim(self) -> int | None:
        """Dimension ``d`` of the vectors its linear part (:meth:`rotation`) acts on, or
        ``None`` if it does not act on vectors."""
        return None

    @property
    def is_proper(self) -> bool:
        """Whether every linear part has determinant +1 (rotations only, no reflections)."""
        return False

    @property
    def has_translations(self) -> bool:
        """Whether elements also translate points (:meth:`translation`)."""
        return False

    def rotation(self, g: Element, dtype: DType = None) -> Tensor:
        """The linear part ``[B, d, d]`` acting on column vectors (``d = vector_dim``)."""
        raise UnsupportedGroupError(f"{self} does not act on vectors (it has no rotation part)")

    def translation(self, g: Element, dtype: DType = None) -> Tensor:
        """The translation part ``[B, d]`` (groups with :attr:`has_translations`)."""
        raise UnsupportedGroupError(f"{self} has no translations")

    def from_parts(self, rotation: Tensor, translation: Tensor | None = None) -> Element:
        """The element with linear part ``rotation`` ``[B, d, d]`` (and ``translation``
        ``[B, d]`` for groups with translations): inverse of :meth:`rotation`/:meth:`translation`."""
        raise UnsupportedGroupError(f"{self} cannot build elements from a rotation matrix")

    def lie_algebra(self, *, device: Device = None, dtype: DType = None) -> Tensor:
        """Basis ``[m, k, k]`` of the Lie algebra, in the representation :meth:`exp` takes."""
        raise UnsupportedGroupError(f"{self} is not a continuous group: it has no Lie algebra")

    def exp(self, xi: Tensor) -> Element:
        """Exponential map: Lie-algebra elements ``[B, k, k]`` (as in :meth:`lie_algebra`)
        to group elements ``[B]``."""
        raise UnsupportedGroupError(f"{self} is not a continuous group: it has no exponential map")

    @property
    def acts_on_grid(self) -> bool:
        """Whether every element maps a square pixel grid to itself (rotations by multiples
        of 90°, row flips), so it acts on images exactly; see :meth:`grid_moves`."""
        return False

    def grid_moves(self, g: Element) -> tuple[Tensor, Tensor]:
        """``(quarter_turns [B], row_flips [B])``: ``g`` acts on an image as
        ``rot90(·, quarter_turns)`` after flipping the rows if ``row_flips`` (groups with
        :attr:`acts_on_grid`)."""
        raise UnsupportedGroupError(f"{self} does not map the pixel grid to itself")

    def compatible(self, other: "Group") -> bool:
        """Whether elements of ``other`` can be used as elements of this group."""
        return self == other

    def join(self, parts: tuple[Element, ...]) -> Element:
        """Inverse of :meth:`split`: the element with these factor components."""
        if len(parts) != 1:
            raise TypeError(f"{self} has one factor, got {len(parts)} components")
        return parts[0]

    def allclose(self, g: Element, h: Element, atol: float = 1e-5) -> Tensor:
        """``[B]`` bool: whether the elements are equal (up to ``atol`` for continuous groups)."""
        gs, hs = _leaves(g), _leaves(h)
        out = torch.ones(gs[0].shape[0], dtype=torch.bool, device=gs[0].device)
        for a, b in zip(gs, hs, strict=True):
            diff = (a.to(torch.float64) - b.to(torch.float64)).abs().reshape(a.shape[0], -1)
            out &= (diff <= atol).all(1)
        return out

    # --- value semantics -------------------------------------------------------------
    def __str__(self) -> str:
        return self.name or type(self).__name__

    def __mul__(self, other: "Group") -> "Group":
        from .product import DirectProduct

        return DirectProduct(self, other)


def _leaves(g: Element) -> list[Tensor]:
    if isinstance(g, tuple):
        return [t for h in g for t in _leaves(h)]
    return [g]


def iter_factors(group: Group, g: Element) -> Iterator[tuple[Group, Element]]:
    """Pairs ``(factor, component)`` of a (possibly product) group element."""
    yield from zip(group.factors, group.split(g), strict=True)


def default_float(dtype: DType) -> torch.dtype:
    return dtype if dtype is not None and dtype.is_floating_point else torch.get_default_dtype()


#: Floating types whose linear algebra (QR, eigh, det) runs in float32: torch has no CPU
#: kernels for them, and their rounding would make group elements visibly non-orthogonal.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def compute_float(dtype: torch.dtype | None) -> torch.dtype:
    """The dtype group elements are computed in for data of ``dtype``: float32 for half
    precision (the result is cast back to ``dtype``), else :func:`default_float`."""
    dtype = default_float(dtype)
    return torch.float32 if dtype in LOW_PRECISION else dtype
