"""Test trials (``train.test_trials``): the test split evaluated over several draws of
the model's randomness (Monte-Carlo averaging, PS samples), averaged, with their spread."""

from __future__ import annotations

from typing import Callable

import torch


def average_trials(evaluate: Callable[..., dict[str, float]], trials: int) -> dict[str, float]:
    """``evaluate(trial=i, equivariance=i == 0)`` for ``i < trials``: each metric averaged
    over the trials, ``<metric>_std`` their (population) standard deviation when
    ``trials > 1``, and ``test_trials``. The equivariance error and Lie derivatives are
    measured in the first trial only (their values are those of that trial).

    >>> average_trials(lambda trial, equivariance: {"test/mse": [1.0, 3.0][trial]}, 2)
    {'test/mse': 2.0, 'test/mse_std': 1.0, 'test_trials': 2}
    """
    runs = [evaluate(trial=i, equivariance=i == 0) for i in range(trials)]
    out = dict(runs[0])
    for key in runs[-1]:
        values = torch.tensor([run[key] for run in runs], dtype=torch.float64)
        out[key] = float(values.mean())
        if trials > 1:
            out[f"{key}_std"] = float(values.std(unbiased=False))
    out["test_trials"] = trials
    return out
