"""Synthetic data generated locally (no downloads), seeded by a ``torch.Generator``."""

from .graphs import CSL_SKIPS, DenseGraphs, csl_graphs, exp_pairs, random_node_order, sbm_pattern

__all__ = ["CSL_SKIPS", "DenseGraphs", "csl_graphs", "exp_pairs", "random_node_order", "sbm_pattern"]
