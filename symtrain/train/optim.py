"""AdamW parameter groups and the learning-rate schedule of a recipe (torch's schedulers)."""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR

from ..overrides import ConfigError
from .config import Recipe


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """AdamW parameter groups: one per ``optim.param_groups`` entry (first regex match
    wins), then the rest at the base settings. Empty groups are dropped."""
    o = recipe.optim
    specs = []
    for i, g in enumerate(o.param_groups):
        try:
            regex = re.compile(g.match)
        except re.error as err:
            raise ConfigError(f"optim.param_groups[{i}].match: not a regex: {err}") from None
        lr = g.lr if g.lr is not None else o.lr * (g.lr_scale if g.lr_scale is not None else 1.0)
        wd = g.weight_decay if g.weight_decay is not None else o.weight_decay
        specs.append((regex, {"params": [], "lr": lr, "weight_decay": wd, "name": g.match}))
    rest = {"params": [], "lr": o.lr, "weight_decay": o.weight_decay, "name": "default"}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        for regex, group in specs:
            if regex.search(pname):
                group["params"].append(p)
                break
        else:
            rest["params"].append(p)
    for i, (_, group) in enumerate(specs):
        if not group["params"]:
            raise ConfigError(f"optim.param_groups[{i}].match: {group['name']!r} matches no parameter")
    return [g for _, g in specs if g["params"]] + ([rest] if rest["params"] else [])


def create_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`."""
    o = recipe.optim
    return torch.optim.AdamW(param_groups(model, recipe), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                             weight_decay=o.weight_decay)


def create_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe) -> LRScheduler:
    """Linear warm-up over ``optim.warmup_steps`` (the rate × ``(t + 1) / warmup_steps`` at
    step ``t``), then down to ``min_lr_ratio`` at ``train.steps``: a ``cosine``
    (:class:`~torch.optim.lr_scheduler.CosineAnnealingLR`, floor ``min_lr_ratio × optim.lr``)
    or ``linear`` decay (:class:`~torch.optim.lr_scheduler.LinearLR`, floor ``min_lr_ratio`` ×
    each group's rate), ``constant``, or ``step`` (:class:`~torch.optim.lr_scheduler.StepLR`:
    × ``gamma`` every ``step_size`` steps after the warm-up). Stepped once per optimizer step."""
    o = recipe.optim
    warm, decay_steps = o.warmup_steps, max(1, recipe.train.steps - o.warmup_steps)
    if o.schedule == "cosine":
        decay: LRScheduler = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=o.min_lr_ratio * o.lr)
    elif o.schedule == "step":
        decay = StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    elif o.schedule == "linear":
        decay = LinearLR(optimizer, start_factor=1.0, end_factor=o.min_lr_ratio, total_iters=decay_steps)
    else:
        decay = ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warm == 0:
        return decay
    warmup = LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=max(1, warm - 1))
    return SequentialLR(optimizer, [warmup, decay], milestones=[warm])
