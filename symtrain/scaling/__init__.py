"""Scaling studies: training compute (:mod:`symtrain.metrics.flops`, re-exported), sweeps over a grid of runs
(:mod:`.sweep`) and power-law fits with plots (:mod:`.fit`)."""

from ..metrics.flops import StepFlops, count_flops, count_step_flops, training_compute
from .sweep import SweepResult, expand, load_sweep, point_id, run_sweep

# .fit imports scipy (the [scaling] extra) when a fit runs; import it as symtrain.scaling.fit.
__all__ = ["StepFlops", "SweepResult", "count_flops", "count_step_flops", "expand", "load_sweep",
           "point_id", "run_sweep", "training_compute"]
