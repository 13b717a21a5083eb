"""How groups act on data: one class per data type. See :mod:`symtrain.actions.base`."""

from .base import Action, NodeView, matrix_on_nodes, permute_axis, rotate_last
from .fields import Fields
from .graph import Graph, GraphNodes
from .image import Image
from .nodes import Adjacency, Mask, Nodes
from .points import Points, Vectors
from .registry import create_action, list_actions, register_action
from .trivial import Trivial

__all__ = ["Action", "NodeView", "Trivial", "Points", "Vectors", "Nodes", "Mask", "Adjacency",
           "Image", "Graph", "GraphNodes", "Fields", "permute_axis", "rotate_last", "matrix_on_nodes",
           "create_action", "list_actions", "register_action"]
