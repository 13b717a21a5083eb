"""Equivariant interface networks ``(x, ε) -> g`` for
:class:`~symtrain.symmetrize.probabilistic.ProbabilisticSymmetrization`, by name through
:func:`create_interface`."""

from .base import Interface, NodeView, RelaxedElement, groups_compatible, node_view
from .image import ImageInterface
from .permutation import PermutationInterface, log_sinkhorn, permutation_entropy, relaxed_permutation, soft_sort_logits
from .product import ProductInterface
from .registry import (
    create_interface,
    default_interface,
    get_interface_class,
    interface_supports,
    list_interfaces,
    register_interface,
)
from .rotation import RotationInterface, VNEncoder, VNLeakyReLU, VNLinear, gram_schmidt

__all__ = ["Interface", "RelaxedElement", "NodeView", "node_view", "groups_compatible",
           "create_interface", "default_interface", "get_interface_class", "list_interfaces",
           "register_interface", "interface_supports",
           "PermutationInterface", "soft_sort_logits", "log_sinkhorn", "permutation_entropy",
           "relaxed_permutation", "RotationInterface", "ProductInterface", "VNEncoder", "VNLinear",
           "VNLeakyReLU", "gram_schmidt", "ImageInterface"]
