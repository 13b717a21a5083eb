"""Several fields at once, e.g. positions, velocities and charges of an n-body system:
``Fields(Points(), Vectors(), Nodes())`` acts on a tuple, ``Fields(pos=Points(), …)``
on a dict. A :class:`Mask` among them supplies the mask to the others' contexts."""

from __future__ import annotations

from ..errors import ShapeError
from ..groups.base import GroupContext
from .base import Action
from .nodes import Mask


class Fields(Action):
    def __init__(self, *actions: Action, **named: Action):
        if actions and named:
            raise ValueError("Fields takes either positional actions (a tuple) or keyword actions (a dict)")
        if not actions and not named:
            raise ValueError("Fields needs at least one action")
        self.actions: tuple[Action, ...] | dict[str, Action] = actions or dict(named)

    def _items(self, x):
        if isinstance(self.actions, dict):
            if not isinstance(x, dict) or set(x) != set(self.actions):
                got = sorted(x) if isinstance(x, dict) else type(x).__name__
                raise ShapeError(f"Fields expects a dict with keys {sorted(self.actions)}, got {got}")
            return [(k, self.actions[k], x[k]) for k in self.actions]
        if not isinstance(x, (tuple, list)) or len(x) != len(self.actions):
            got = f"{len(x)} items" if isinstance(x, (tuple, list)) else type(x).__name__
            raise ShapeError(f"Fields expects a tuple of {len(self.actions)} items, got {got}")
        return [(i, a, v) for i, (a, v) in enumerate(zip(self.actions, x))]

    def _rebuild(self, pairs):
        if isinstance(self.actions, dict):
            return dict(pairs)
        return tuple(v for _, v in pairs)

    def _each(self):
        return self.actions.values() if isinstance(self.actions, dict) else self.actions

    def check_group(self, group):
        for action in self._each():
            action.check_group(group)

    def supports(self, factor):
        for action in self._each():
            reason = action.supports(factor)
            if reason is not None:
                return f"{action!r}: {reason}"
        return None

    def check(self, x, group):
        items = self._items(x)
        sizes = set()
        for key, action, value in items:
            action.check(value, group)
            sizes.add(action.batch_size(value))
        if len(sizes) > 1:
            raise ShapeError(f"the fields of one input have different batch sizes: {sorted(sizes)}")

    def act(self, group, g, x, context=None):
        return self._rebuild([(k, a.act(group, g, v, context)) for k, a, v in self._items(x)])

    def act_factor(self, factor, g, x, context):  # act() is overridden; kept for the contract
        return self._rebuild([(k, a.act_factor(factor, g, v, context)) for k, a, v in self._items(x)])

    def context(self, x, mask=None):
        items = self._items(x)
        for _, action, value in items:
            if isinstance(action, Mask):
                mask = value
        out = GroupContext()
        for _, action, value in items:
            out = out.merge(action.context(value, mask=mask))
        return out

    def batch_size(self, x):
        _, action, value = self._items(x)[0]
        return action.batch_size(value)

    def repeat(self, x, k, context=None):
        return self._rebuild([(key, a.repeat(v, k, context)) for key, a, v in self._items(x)])

    def mean(self, y, weights, context=None):
        return self._rebuild([(key, a.mean(v, weights, context)) for key, a, v in self._items(y)])

    def __repr__(self):
        if isinstance(self.actions, dict):
            return "Fields(" + ", ".join(f"{k}={a!r}" for k, a in self.actions.items()) + ")"
        return "Fields(" + ", ".join(repr(a) for a in self.actions) + ")"
