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

from dataclasses import replace
from typing import Any

import torch

from .groups.base import Element, GroupContext
from .symmetry import Symmetry


def random_elements(symmetry: Symmetry, x: Any, context: GroupContext, k: int = 1,
                    generator: torch.Generator | None = None) -> Element:
    """``k`` random group elements per example of ``x`` (``[B·k]``, b-major).

    Compact factors are Haar-random. Translations (E(d), SE(d)) are drawn from
    ``N(0, translation_scale² I)`` rather than set to the centroid (which is what the
    averaging wrappers use to centre the data), so augmented copies really move.
    """
    from .symmetry import reference_tensor

    ref = reference_tensor(x)
    dtype = ref.dtype if ref.is_floating_point() else None
    return symmetry.sample(replace(context, centroid=None), k, generator,
                           device=ref.device, dtype=dtype)


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

    def sample(self, x: Any) -> Element:
        """One random element per example of ``x`` (``[B]``)."""
        self.symmetry.check_input(x)
        return random_elements(self.symmetry, x, self.symmetry.context(x), 1, self.generator)

    def apply(self, g: Element, x: Any, y: Any = None) -> Any:
        """``g·x`` (and ``g·y`` if ``y`` is given) for given elements ``g`` (``[B]``)."""
        context = self.symmetry.context(x)
        gx = self.symmetry.act_input(g, x, context)
        if y is None:
            return gx
        return gx, self.symmetry.act_output(g, y, context)

    def __call__(self, x: Any, y: Any = None) -> Any:
        single = _is_single_graph(x)
        out = self.apply(self.sample(x), x, y)
        if single:  # PyG transform: Data in, Data out
            if y is None:
                return out.get_example(0)
            return out[0].get_example(0), out[1]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(symmetry={self.symmetry}, generator={self.generator!r})"


def _is_single_graph(x: Any) -> bool:
    if not hasattr(x, "to_dict"):
        return False
    from torch_geometric.data import Batch, Data

    return isinstance(x, Data) and not isinstance(x, Batch)
