"""Several fields at once, e.g. positions, velocities and charges of an n-body system:
``Fields(Points(), Vectors(), Nodes())`` acts on a tuple, ``Fields(pos=Points(), …)``
on a dict. A :class:`Mask` among them supplies the mask to the others' contexts."""

from __future__ import annotations

from ..errors import ShapeError
from ..groups.base import GroupContext
from .base import Action, NodeView
from .registry import create_action, register_action


@register_action("fields")
class Fields(Action):
    """Actions given as objects or registered names (``Fields("points", "vectors")``)."""

    def __init__(self, *actions: Action | str, **named: Action | str):
        if actions and named:
            raise ValueError("Fields takes either positional actions (a tuple) or keyword actions (a dict)")
        if not actions and not named:
            raise ValueError("Fields needs at least one action")
        self.actions: tuple[Action, ...] | dict[str, Action] = (
            tuple(create_action(a) for a in actions) if actions
            else {k: create_action(a) for k, a in named.items()})

    def _items(self, x):
        if isinstance(self.actions, dict):
            if not isinstance(x, dict) or set(x) != set(self.actions):
                got = sorted(x) if isinstance(x, dict) else type(x).__name__
                raise ShapeError(f"Fields expects a dict with keys {sorted(self.actions)}, got {got}")
            return [(k, self.actions[k], x[k]) for k in self.actions]
        if not isinstance(x, (tuple, list)) or len(x) != len(self.actions):
            got = f"{len(x)} items" if isinstance(x, (tuple, list)) else type(x).__name__
            raise ShapeError(f"Fields expects a tuple of {len(self.actions)} items, got {got}")
        return [(i, a, v) for i, (a, v) in enumerate(zip(self.actions, x, strict=True))]

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
        for _key, action, value in items:
            action.check(value, group)
            sizes.add(action.batch_size(value))
        if len(sizes) > 1:
            raise ShapeError(f"the fields of one input have different batch sizes: {sorted(sizes)}")

    def apply(self, group, g, x, context=None):
        return self._rebuild([(k, a.apply(group, g, v, context)) for k, a, v in self._items(x)])

    def apply_repeated(self, group, g, x, k, context=None):
        return self._rebuild([(key, a.apply_repeated(group, g, v, k, context)) for key, a, v in self._items(x)])

    def apply_tiled(self, group, elements, y, context=None):
        return self._rebuild([(k, a.apply_tiled(group, elements, v, context)) for k, a, v in self._items(y)])

    def orbit(self, group, elements, x, context=None):
        return self._rebuild([(k, a.orbit(group, elements, v, context)) for k, a, v in self._items(x)])

    def take(self, x, rows, context=None):
        return self._rebuild([(k, a.take(v, rows, context)) for k, a, v in self._items(x)])

    def put(self, y, rows, context):
        return self._rebuild([(k, a.put(v, rows, context)) for k, a, v in self._items(y)])

    def act_factor(self, factor, g, x, context):  # apply() is overridden; kept for the contract
        return self._rebuild([(k, a.act_factor(factor, g, v, context)) for k, a, v in self._items(x)])

    def context(self, x, mask=None):
        items = self._items(x)
        contexts = [action.context(value) for _, action, value in items]
        for ctx in contexts:  # a Mask field supplies the mask to the others' contexts
            if ctx.mask is not None:
                mask = ctx.mask
        out = GroupContext()
        for (_, action, value), ctx in zip(items, contexts, strict=True):
            # only fields whose own context lacks the mask are asked again, with it
            out = out.merge(action.context(value, mask=mask) if mask is not None and ctx.mask is None else ctx)
        return out

    def leaves(self, x):
        return [leaf for _, action, value in self._items(x) for leaf in action.leaves(value)]

    def node_view(self, x, context=None):
        view = NodeView()
        for _, action, value in self._items(x):
            view = view.merge(action.node_view(value, context))
        return view

    def _first(self, capability: str, x):
        """The first field's non-``None`` answer to ``capability`` (``None`` if none has one)."""
        for _, action, value in self._items(x):
            out = getattr(action, capability)(value)
            if out is not None:
                return out
        return None

    def points(self, x):
        return self._first("points", x)

    def pixels(self, x):
        return self._first("pixels", x)

    def soft_permute(self, x, matrix, context=None):
        return self._rebuild([(k, a.soft_permute(v, matrix, context)) for k, a, v in self._items(x)])

    def batch_size(self, x):
        _, action, value = self._items(x)[0]
        return action.batch_size(value)

    def repeat(self, x, k, context=None):
        return self._rebuild([(key, a.repeat(v, k, context)) for key, a, v in self._items(x)])

    def mean(self, y, weights, context=None):
        return self._rebuild([(key, a.mean(v, weights, context)) for key, a, v in self._items(y)])

    act_mean = Action.checked_apply_mean  # each field's own apply_mean

    def apply_mean(self, group, g, y, weights, context_k=None, context=None):
        return self._rebuild([(key, a.apply_mean(group, g, v, weights, context_k, context))
                              for key, a, v in self._items(y)])

    def __repr__(self):
        if isinstance(self.actions, dict):
            return "Fields(" + ", ".join(f"{k}={a!r}" for k, a in self.actions.items()) + ")"
        return "Fields(" + ", ".join(repr(a) for a in self.actions) + ")"
