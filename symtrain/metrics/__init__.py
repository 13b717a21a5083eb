"""Measuring equivariance."""

from .equivariance import EquivarianceError, assert_equivariant, equivariance_error
from .symmetry_test import SymmetryTestError, SymmetryTestResult, symmetry_test

__all__ = ["EquivarianceError", "equivariance_error", "assert_equivariant",
           "symmetry_test", "SymmetryTestResult", "SymmetryTestError"]
