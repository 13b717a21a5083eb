"""Model selection (``train.select``): which weights the final metrics are of.

``last``: the weights after the last step. ``best_val``: the weights of the best
validation evaluation of the task's main metric (lower is better, except for the
metrics in :data:`HIGHER_IS_BETTER`), written to ``best.safetensors`` when they are
found and loaded back at the end. The best step and value are the selection's state
(``state_dict``, checkpointed with the run).
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
        metric: the task's main metric (e.g. ``"mse"``, ``"accuracy"``), read as ``val/<metric>``.
        path: where the best weights are written (``best.safetensors`` of the run).
    """

    def __init__(self, select: str, metric: str, path: str | Path):
        if select not in ("last", "best_val"):
            raise ConfigError(f"train.select: {select!r} is neither 'last' nor 'best_val'")
        self.select, self.metric, self.path = select, metric, Path(path)
        self.higher = metric in HIGHER_IS_BETTER
        self.best_step = 0  # step of the best validation metric so far (0: none yet)
        self.best_value: float | None = None

    def state_dict(self) -> dict:
        return {"best_step": self.best_step, "best_value": self.best_value}

    def load_state_dict(self, state: dict) -> None:
        self.best_step, self.best_value = int(state["best_step"]), state["best_value"]

    def observe(self, value: float, step: int) -> bool:
        """Record ``value`` of ``step`` if it is the best so far (ties keep the earlier
        step); whether it was."""
        best = self.best_value
        if best is not None and not (value > best if self.higher else value < best):
            return False
        self.best_step, self.best_value = step, float(value)
        return True

    def update(self, acc, model: nn.Module, metrics: dict[str, float], step: int) -> None:
        """After a validation evaluation (``metrics``: ``{"val/<name>": value}``): with
        ``best_val``, write the weights to :attr:`path` (main process, atomically) if they
        are the best so far. Collective: every process calls it."""
        if self.select != "best_val" or not self.observe(metrics[f"val/{self.metric}"], step):
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
