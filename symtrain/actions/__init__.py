"""How groups act on data: one class per data type. See :mod:`symtrain.actions.base`."""

from .base import Action, NodeView, matrix_on_nodes, permute_axis, rotate_last
from .registry import create_action, list_actions, register_action
from .trivial import Trivial
from .points import Points, Vectors
from .nodes import Adjacency, Mask, Nodes
from .image import Image
from .graph import Graph, GraphNodes
from .fields import Fields

__all__ = ["Action", "NodeView", "Trivial", "Points", "Vectors", "Nodes", "Mask", "Adjacency",
           "Image", "Graph", "GraphNodes", "Fields", "permute_axis", "rotate_last", "matrix_on_nodes",
           "create_action", "list_actions", "register_action"]
