"""Models by name (``create_model("gin", num_classes=2)``, ``list_models()``): small base
models used by the recipes, timm ViTs (one weights loader, :mod:`.timm_loader`) and the
p4 ResNet of the grid diagnostics. None of the base models is equivariant to the
recipes' full group on its own; the symmetrization wrappers make them so."""

from .graphs import AdjacencyMLP, DenseGIN, NodeTransformer
from .keypoint_transformer import KeypointTransformer
from .nbody import NBodyTransformer
from .nbody_pair import NBodyPairTransformer
from .p4_resnet import p4_resnet
from .registry import create_model, list_models, register_model
from .rigid_egnn import RigidEGNN
from .timm_loader import WeightsUnavailableError, load_timm_model

__all__ = ["NBodyTransformer", "NBodyPairTransformer", "AdjacencyMLP", "DenseGIN", "NodeTransformer",
           "KeypointTransformer",
           "RigidEGNN", "p4_resnet", "create_model", "list_models", "register_model", "load_timm_model",
           "WeightsUnavailableError"]
