"""A :class:`Symmetry` binds a group to how it acts on a model's input and output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .actions.base import Action
from .actions.trivial import Trivial
from .groups.base import Element, Group, GroupContext, element_tile
from .groups.registry import create_group


@dataclass(frozen=True)
class Symmetry:
    """The symmetry a model should respect: ``f(g·x) = g·f(x)`` for all ``g`` in ``group``,
    with ``g`` acting on inputs by ``input`` and on outputs by ``output``.

    >>> import symtrain as st
    >>> sym = st.Symmetry("SO3", input=st.actions.Points(), output=st.actions.Trivial())
    >>> str(sym.group)
    'SO3'
    """

    group: Group
    input: Action
    output: Action = field(default_factory=Trivial)

    def __post_init__(self):
        object.__setattr__(self, "group", create_group(self.group))
        for role in ("input", "output"):
            action = getattr(self, role)
            if not isinstance(action, Action):
                raise TypeError(f"{role} must be a symtrain Action, got {type(action).__name__}")
            action.check_group(self.group)

    @property
    def invariant(self) -> bool:
        return isinstance(self.output, Trivial)

    def check_input(self, x: Any) -> None:
        self.input.check(x, self.group)

    def context(self, x: Any) -> GroupContext:
        return self.input.context(x)

    def act_input(self, g: Element, x: Any, context: GroupContext | None = None) -> Any:
        return self.input.act(self.group, g, x, context)

    def act_output(self, g: Element, y: Any, context: GroupContext | None = None) -> Any:
        return self.output.act(self.group, g, y, context)

    def sample(self, context: GroupContext, k: int = 1, generator: torch.Generator | None = None,
               device=None, dtype=None) -> Element:
        """``k`` elements per input (``[B·k]``, b-major) for an input with ``context``."""
        batch = context.batch_size * k
        return self.group.sample(batch, context=context.repeat(k), generator=generator,
                                 device=device, dtype=dtype)

    def all_elements(self, context: GroupContext, device=None, dtype=None) -> Element:
        """Every element of a finite group, tiled over the batch: ``[B·|G|]``, b-major."""
        elems = self.group.elements(context=context, device=device, dtype=dtype)
        return element_tile(elems, context.batch_size)

    def __str__(self) -> str:
        return f"{self.group} acting on {self.input!r} -> {self.output!r}"
