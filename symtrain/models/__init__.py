"""Small base models used by the recipes. None of them is equivariant to the recipes'
full group on its own; the symmetrization wrappers make them so."""

from .graphs import AdjacencyMLP, DenseGIN, NodeTransformer
from .keypoint_transformer import KeypointTransformer
from .nbody import NBodyTransformer
from .rigid_egnn import RigidEGNN

__all__ = ["NBodyTransformer", "AdjacencyMLP", "DenseGIN", "NodeTransformer", "KeypointTransformer",
           "RigidEGNN"]
