"""symtrain: make any PyTorch model respect the symmetries of its data, and measure how
well it does.

>>> import torch, symtrain as st
>>> sym = st.Symmetry(st.groups.Dihedral(4), input=st.actions.Image(), output=st.actions.Trivial())
>>> model = st.GroupAveraging(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(3)), sym)
>>> x = torch.randn(2, 1, 5, 5)
>>> st.equivariance_error(model, sym, x).max < 1e-5
True
"""

from . import actions, groups, lie, tree
from .augment import Augment
from .errors import DegenerateFrameError, ShapeError, SymmetryError, UnsupportedGroupError
from .groups import create_group
from .lie import layerwise_lie, lie_derivative, lie_derivatives, lie_report
from .losses import EquivarianceLoss, GradNorm
from .metrics import (
                      EquivarianceError,
                      SymmetryTestError,
                      SymmetryTestResult,
                      assert_equivariant,
                      equivariance_error,
                      symmetry_test,
)
from .metrics.grid import Shift, input_size_check, layer_equivariance
from .symmetrize import (
                      Canonicalization,
                      FrameAveraging,
                      GroupAveraging,
                      LearnedCanonicalizer,
                      ProbabilisticSymmetrization,
                      Symmetrizer,
                      create_symmetrizer,
                      interfaces,
                      list_symmetrizers,
                      register_symmetrizer,
)
from .symmetry import Probe, Symmetry, call_model, reference_tensor

__version__ = "0.1.0"

__all__ = [
    "actions", "groups", "create_group", "Symmetry", "Probe", "call_model", "reference_tensor", "tree",
    "Symmetrizer", "create_symmetrizer", "list_symmetrizers", "register_symmetrizer", "GroupAveraging",
    "FrameAveraging", "Canonicalization", "ProbabilisticSymmetrization", "LearnedCanonicalizer",
    "interfaces", "equivariance_error", "assert_equivariant",
    "EquivarianceError", "SymmetryError", "ShapeError", "UnsupportedGroupError",
    "DegenerateFrameError", "Augment", "EquivarianceLoss", "GradNorm",
    "lie", "lie_derivative", "lie_derivatives", "lie_report", "layerwise_lie",
    "input_size_check", "layer_equivariance", "Shift",
    "symmetry_test", "SymmetryTestResult", "SymmetryTestError",
]
