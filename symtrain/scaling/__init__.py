"""Scaling studies: training compute (:mod:`symtrain.metrics.flops`, re-exported), sweeps over a grid of runs
(:mod:`.sweep`, with :mod:`.runs` for points that are training runs), power-law fits
(:mod:`.fit`) and their plots (:mod:`.plots`). The commands are ``symtrain sweep`` and
``symtrain fit`` (:mod:`symtrain.cli`)."""

from ..metrics.flops import StepFlops, count_flops, count_step_flops, training_compute
from .sweep import SweepResult, expand, load_sweep, point_id, run_sweep

# .fit imports scipy and .plots matplotlib (the [scaling] extra) when they run; import them
# as symtrain.scaling.fit and symtrain.scaling.plots.
__all__ = ["StepFlops", "SweepResult", "count_flops", "count_step_flops", "expand", "load_sweep",
           "point_id", "run_sweep", "training_compute"]
