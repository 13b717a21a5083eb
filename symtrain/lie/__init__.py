"""Lie-derivative evaluation of learned equivariance (Gruver et al., ICLR 2023): end to
end (:func:`lie_derivative`, :func:`lie_derivatives`), layer by layer
(:func:`layerwise_lie`), and as a report (:func:`lie_report`, ``symtrain lie``)."""

from .derivative import (
    METHODS,
    StochasticModelWarning,
    fd_step,
    forward_ad_attention,
    lie_derivative,
    lie_derivatives,
    per_example_norm,
    resolve_method,
)
from .generators import IMAGE_GENERATORS, ActionGenerator, Generator, ImageGenerator, group_generators, image_gradient
from .layerwise import LayerwiseLie, default_units, layerwise_lie
from .report import LieReport, WeightsUnavailableError, lie_report, load_timm_model

__all__ = ["lie_derivative", "lie_derivatives", "per_example_norm", "forward_ad_attention",
           "METHODS", "fd_step", "resolve_method", "StochasticModelWarning",
           "IMAGE_GENERATORS", "Generator", "ImageGenerator", "ActionGenerator",
           "group_generators", "image_gradient", "layerwise_lie", "LayerwiseLie", "default_units",
           "lie_report", "LieReport", "load_timm_model", "WeightsUnavailableError"]
