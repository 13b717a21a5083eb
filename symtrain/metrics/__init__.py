"""Measuring equivariance."""

from .equivariance import EquivarianceError, assert_equivariant, equivariance_error

__all__ = ["EquivarianceError", "equivariance_error", "assert_equivariant"]
