"""Data augmentation over a symmetry: the baseline every equivariance study needs.

:class:`Augment` draws one random group element per example and returns the transformed
batch ``(g·x, g·y)``, using the symmetry's input and output actions, so it covers any
group and data type symtrain knows (permutations of graphs, rotations of point clouds,
products such as S_n × E(3), planar symmetries of images).

>>> import torch, symtrain as st
>>> from symtrain.augment import Augment
>>> sym = st.Symmetry("SO3", input=st.actions.Points(), output=st.actions.Vectors(nodes=False))
>>> aug = Augment(sym, generator=torch.Generator().manual_seed(0))
>>> x, y = torch.randn(4, 5, 3), torch.randn(4, 3)
>>> gx, gy = aug(x, y)
>>> gx.shape, gy.shape
(torch.Size([4, 5, 3]), torch.Size([4, 3]))
"""

from __future__ import annotations

from typing import Any

import torch

from .groups.base import Element
from .symmetry import Probe, Symmetry
from .tree import is_single_graph


class Augment:
    """Random symmetry transformations of a batch: ``(x, y) -> (g·x, g·y)``, one ``g``
    per example.

    Args:
        symmetry: the group and how it acts on inputs ``x`` and targets ``y`` (for an
            invariant task, ``output=Trivial()`` leaves ``y`` unchanged).
        generator: ``torch.Generator`` for the draws (default: torch's global one).

    Calls:
        ``aug(x, y)`` returns ``(g·x, g·y)``; ``aug(x)`` returns ``g·x``. ``x`` is any
        input of ``symmetry.input`` (a tensor, a tuple/dict of fields, a PyG batch).
        As a PyG transform, ``aug(data)`` on a single ``Data`` returns a new ``Data``
        (node-level targets stored on the graph are permuted with it, graph-level ones
        are left as they are). The caller's data is never modified.
    """

    def __init__(self, symmetry: Symmetry, generator: torch.Generator | None = None):
        if not isinstance(symmetry, Symmetry):
            raise TypeError(f"symmetry must be a symtrain.Symmetry, got {type(symmetry).__name__}")
        self.symmetry = symmetry
        self.generator = generator

    def probe(self, x: Any) -> Probe:
        """One random element per example of ``x`` and the moved inputs (see
        :meth:`Symmetry.probe`). Compact factors are Haar-random; translations (E(d),
        SE(d)) are drawn from ``N(0, translation_scale² I)`` rather than set to the
        centroid, so augmented copies really move."""
        return self.symmetry.probe(x, 1, self.generator, random_translations=True)

    def sample(self, x: Any) -> Element:
        """One random element per example of ``x`` (``[B]``)."""
        return self.probe(x).elements

    def apply(self, g: Element, x: Any, y: Any = None) -> Any:
        """``g·x`` (and ``g·y`` if ``y`` is given) for given elements ``g`` (``[B]``)."""
        context = self.symmetry.context(x)
        gx = self.symmetry.act_input(g, x, context)
        if y is None:
            return gx
        return gx, self.symmetry.act_output(g, y, context)

    def __call__(self, x: Any, y: Any = None) -> Any:
        probe = self.probe(x)
        gx = probe.inputs
        if is_single_graph(x):  # PyG transform: Data in, Data out
            gx = gx.get_example(0)
        return gx if y is None else (gx, probe.act_output(y))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(symmetry={self.symmetry}, generator={self.generator!r})"

