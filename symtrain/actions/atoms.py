"""Atom types of padded molecules: integer labels ``[B, N]`` where ``0`` marks padding.

Molecules of different sizes are padded to a common ``N`` (QM9: real atoms first, then
``z = 0`` slots). The padding is part of the tensor but not of the molecule, so the
group must know it: otherwise S_n counts the padded slots as atoms, and a frame (or a
canonical labelling) sees ``k`` identical padded atoms whose ``k!`` permutations all fix
the input. Minimal frames then average over that factorial stabiliser (sampled beyond
its limit, so no longer exact), augmentation scatters padding among real atoms, and
interfaces read padding as atoms. This action declares the padding as the input's mask
(like a :class:`~symtrain.actions.nodes.Mask` field, but read from the labels
themselves): permutations keep the padding in place, and frames, centroids and
interfaces see only real atoms.
"""

from __future__ import annotations

import torch

from ..checks import can_read_values, check_prefix_mask
from ..errors import ShapeError
from ..groups.base import GroupContext
from .base import NodeView
from .nodes import Nodes
from .registry import register_action


@register_action("atoms")
class Atoms(Nodes):
    """Integer atom labels ``[B, N]`` (e.g. atomic numbers), ``0`` on padding slots,
    which follow every sample's real atoms. Permuted by S_n like node features
    (``(g·z)[p[j]] = z[j]``), invariant under every other factor; the labels' nonzero
    pattern is the input's node mask."""

    ndims: tuple[int, ...] = (2,)
    layout = "(B, N) integer, 0 = padding after the real atoms"

    def check(self, x, group):
        super().check(x, group)
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ShapeError(f"{self!r} expects integer atom labels (0 = padding), got dtype {x.dtype}")
        mask = x != 0
        check_prefix_mask(mask, f"the padding (z = 0) of {self!r}")
        if not can_read_values(x) or not x.numel():  # value checks: eager mode only, as the mask's
            return
        if bool((x < 0).any()):
            raise ShapeError(f"{self!r}: atom labels must be >= 0 (0 = padding), got {int(x.min())}")
        if not bool(mask.any(1).all()):
            raise ShapeError(f"{self!r}: a sample has no atoms (every label is 0 = padding)")

    def context(self, x, mask=None):
        return GroupContext(num_nodes=x.shape[1], mask=x != 0, batch_size=x.shape[0])

    def node_view(self, x, context=None):
        return NodeView(features=x[..., None].to(torch.get_default_dtype()), mask=x != 0)
