"""Datasets: synthetic data generated locally (no downloads, seeded by a
``torch.Generator``) and local copies of benchmarks, each registered by name in its own
module (``create_dataset("nbody", train=64)``, ``list_datasets()``)."""

from .graphs import CSL_SKIPS, DenseGraphs, csl_graphs, exp_pairs, random_node_order, sbm_pattern
from .registry import create_dataset, list_datasets, register_dataset
from .task import Task, TensorData

__all__ = ["CSL_SKIPS", "DenseGraphs", "csl_graphs", "exp_pairs", "random_node_order", "sbm_pattern",
           "Task", "TensorData", "create_dataset", "list_datasets", "register_dataset"]
