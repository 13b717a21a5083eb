"""Groups as immutable values with batched elements. See :mod:`symtrain.groups.base`
for the conventions (left action, column vectors, batch-first elements)."""

from .base import Element, Group, GroupContext
from .euclidean import SE, E, Euclidean
from .orthogonal import SO, O, Orthogonal, SpecialOrthogonal
from .permutation import SymmetricGroup, invert_permutation, permutations_from_scores
from .planar import Cyclic, Dihedral
from .product import DirectProduct
from .registry import create_group, list_groups, register_group

Sn = SymmetricGroup

__all__ = [
    "Element", "Group", "GroupContext", "create_group", "list_groups", "register_group",
    "Cyclic", "Dihedral", "O", "SO", "Orthogonal", "SpecialOrthogonal", "E", "SE",
    "Euclidean", "SymmetricGroup", "Sn", "DirectProduct", "invert_permutation",
    "permutations_from_scores",
]
