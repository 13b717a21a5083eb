"""Model selection (``train.select``): which weights the final metrics are of.

``last``: the weights after the last step. ``best_val``: the weights of the best
validation evaluation of the monitored quantity (``train.monitor``: the task's main
metric by default, or ``loss``; lower is better, except for the metrics in
:data:`HIGHER_IS_BETTER`), written to ``best.safetensors`` when they are found and loaded
back at the end. Early stopping (``train.early_stop``) watches the same quantity: after
that many evaluations in a row without a better value, training stops. The best step and
value and the count of evaluations since are the selection's state (``state_dict``,
checkpointed with the run).
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from .config import ConfigError
from .run_folder import write_weights

logger = logging.getLogger("symtrain.train")

# Main metrics that are better when higher; any other is a loss.
HIGHER_IS_BETTER = frozenset({"accuracy", "weighted_accuracy", "ap",
                              *(f"{m}{v}" for m in ("mrr", "hits@1", "hits@3", "hits@10")
                                for v in ("", "_filtered", "_filtered_noself"))})


class ModelSelection:
    """Track the best validation ``metric`` and select the final weights.

    Args:
        select: ``"last"`` or ``"best_val"`` (``train.select``).
        metric: the monitored quantity (the task's main metric, e.g. ``"mse"``,
            ``"accuracy"``, or ``"loss"``), read as ``val/<metric>``.
        path: where the best weights are written (``best.safetensors`` of the run).
        patience: evaluations without improvement before :attr:`should_stop` (``None``: never).
    """

    def __init__(self, select: str, metric: str, path: str | Path, patience: int | None = None):
        if select not in ("last", "best_val"):
            raise ConfigError(f"train.select: {select!r} is neither 'last' nor 'best_val'")
        self.select, self.metric, self.path, self.patience = select, metric, Path(path), patience
        self.higher = metric in HIGHER_IS_BETTER
        self.best_step = 0  # step of the best validation metric so far (0: none yet)
        self.best_value: float | None = None
        self.since_best = 0  # evaluations since the best one

    def state_dict(self) -> dict:
        return {"best_step": self.best_step, "best_value": self.best_value, "since_best": self.since_best}

    def load_state_dict(self, state: dict) -> None:
        self.best_step, self.best_value = int(state["best_step"]), state["best_value"]
        self.since_best = int(state.get("since_best", 0))  # (checkpoints from before early stopping)

    @property
    def should_stop(self) -> bool:
        """Early stopping: ``patience`` evaluations in a row without a better value."""
        return self.patience is not None and self.since_best >= self.patience

    def observe(self, value: float, step: int) -> bool:
        """Record ``value`` of ``step`` if it is the best so far (ties keep the earlier
        step); whether it was."""
        best = self.best_value
        if best is not None and not (value > best if self.higher else value < best):
            self.since_best += 1
            return False
        self.best_step, self.best_value, self.since_best = step, float(value), 0
        return True

    def update(self, acc, model: nn.Module, metrics: dict[str, float], step: int) -> None:
        """After a validation evaluation (``metrics``: ``{"val/<name>": value}``): with
        ``best_val``, write the weights to :attr:`path` (main process, atomically) if they
        are the best so far. Collective: every process calls it."""
        if self.select != "best_val" and self.patience is None:
            return
        key = f"val/{self.metric}"
        if key not in metrics:
            known = sorted(k.split("/", 1)[1] for k in metrics if k.startswith("val/"))
            raise ConfigError(f"train.monitor: the validation evaluation has no {self.metric!r}; "
                              f"it has {known}")
        if not self.observe(metrics[key], step) or self.select != "best_val":
            return
        if acc.is_main_process:
            write_weights(acc.unwrap_model(model), self.path)
        acc.wait_for_everyone()

    def load(self, acc, model: nn.Module, step: int) -> dict:
        """Load the selected weights into ``model`` (the last step's are in it already);
        the ``metrics.json`` entries saying which (``step``: the last step)."""
        if self.select == "last":
            return {"select": "last", "selected_step": step}
        from safetensors.torch import load_file

        acc.wait_for_everyone()
        if not self.path.is_file():
            raise FileNotFoundError(f"train.select=best_val: {self.path} (the weights of step "
                                    f"{self.best_step}) is missing from the run folder")
        acc.unwrap_model(model).load_state_dict(load_file(str(self.path), device=str(acc.device)))
        logger.info("selected the weights of step %d (val %s)", self.best_step, self.best_value)
        return {"select": "best_val", "selected_step": self.best_step, "selected_val": self.best_value}
