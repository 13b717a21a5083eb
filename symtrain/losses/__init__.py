"""Losses that relax equivariance into the objective (REMUL) and adaptive task weights
(GradNorm)."""

from .equivariance import EquivarianceLoss, equivariance_metrics, remul_metrics
from .gradnorm import GradNorm

__all__ = ["EquivarianceLoss", "GradNorm", "equivariance_metrics", "remul_metrics"]
