"""Scaling studies: training compute (:mod:`.flops`), sweeps over a grid of runs
(:mod:`.sweep`) and power-law fits with plots (:mod:`.fit`)."""

from .flops import StepFlops, count_flops, count_step_flops, training_compute

__all__ = ["StepFlops", "count_flops", "count_step_flops", "training_compute"]
