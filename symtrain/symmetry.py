"""A :class:`Symmetry` binds a group to how it acts on a model's input and output, and
the two helpers every consumer of a model shares: :func:`call_model` and
:func:`reference_tensor`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .actions.base import Action
from .actions.registry import create_action
from .checks import check_finite_input
from .groups.base import Element, Group, GroupContext, element_batch_size, element_tile
from .groups.registry import create_group


def call_model(model, x: Any) -> Any:
    """Call ``model`` on an input; a tuple is unpacked into positional arguments."""
    return model(*x) if isinstance(x, tuple) else model(x)


def reference_tensor(x: Any) -> Tensor:
    """A floating tensor of the input (else any tensor), to read device and dtype from."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, dict):
        items = list(x.values())
    elif isinstance(x, (tuple, list)):
        items = list(x)
    elif hasattr(x, "to_dict"):  # a PyG Data / Batch
        items = [v for v in x.to_dict().values() if isinstance(v, Tensor)]
    else:
        raise TypeError(f"cannot find a tensor in input of type {type(x).__name__}")
    tensors = [reference_tensor(v) for v in items if isinstance(v, (Tensor, dict, tuple, list))]
    floats = [t for t in tensors if t.is_floating_point()]
    if not tensors:
        raise TypeError("the input holds no tensors")
    return floats[0] if floats else tensors[0]


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
    output: Action = "trivial"  # type: ignore[assignment]

    def __post_init__(self):
        object.__setattr__(self, "group", create_group(self.group))
        for role in ("input", "output"):
            action = getattr(self, role)
            if isinstance(action, str):
                action = create_action(action)
                object.__setattr__(self, role, action)
            if not isinstance(action, Action):
                raise TypeError(f"{role} must be a symtrain Action or an action's name, "
                                f"got {type(action).__name__}")
            action.check_group(self.group)

    @property
    def invariant(self) -> bool:
        return self.output.is_invariant

    def check_input(self, x: Any) -> None:
        """Raise if ``x`` does not fit the input action (shape, layout, group mismatch,
        masks with padding between real nodes) or holds NaN/inf (eager mode only)."""
        self.input.check(x, self.group)
        check_finite_input(x)

    def context(self, x: Any) -> GroupContext:
        return self.input.context(x)

    def act_input(self, g: Element, x: Any, context: GroupContext | None = None, *,
                  check: bool = True) -> Any:
        """``g·x`` on inputs; ``check=False`` skips validating ``x`` (already checked)."""
        act = self.input.act if check else self.input.apply
        return act(self.group, g, x, context)

    def act_output(self, g: Element, y: Any, context: GroupContext | None = None, *,
                   check: bool = True) -> Any:
        """``g·y`` on outputs; ``check=False`` skips validating ``y`` (already checked)."""
        act = self.output.act if check else self.output.apply
        return act(self.group, g, y, context)

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

    def transformed_outputs(self, model, x: Any, g: Element, context: GroupContext | None = None,
                            fx: Any = None) -> tuple[Any, Any]:
        """``f(g·x)`` and ``g·f(x)`` for elements ``g`` ``[B·k]`` (``k`` per input,
        b-major), each computed as one batch of ``B·k``. ``fx``: ``f(x)`` if already
        computed (else it is computed). The input and the outputs are checked against
        the actions."""
        self.check_input(x)
        if context is None:
            context = self.context(x)
        k = element_batch_size(g) // context.batch_size
        context_k = context.repeat(k)
        gx = self.act_input(g, self.input.repeat(x, k, context), context_k, check=False)
        f_gx = call_model(model, gx)
        if fx is None:
            fx = call_model(model, x)
        return f_gx, self.act_output(g, self.output.repeat(fx, k, context), context_k)

    def __str__(self) -> str:
        return f"{self.group} acting on {self.input!r} -> {self.output!r}"
