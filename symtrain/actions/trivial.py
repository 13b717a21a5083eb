from __future__ import annotations

from .base import Action, NodeView
from .registry import register_action


@register_action("trivial")
class Trivial(Action):
    """The trivial action ``g·x = x``: invariant outputs (class logits, energies) and
    inputs the group does not move. Any tensor ``[B, ...]``."""

    @property
    def is_invariant(self) -> bool:
        return True

    def act(self, group, g, x, context=None):
        return x

    def apply(self, group, g, x, context=None):
        return x

    def act_factor(self, factor, g, x, context):
        return x

    def node_view(self, x, context=None):
        return NodeView()  # invariant data carries nothing per node

    def points(self, x):
        return None

    def pixels(self, x):
        return None

    def soft_permute(self, x, matrix, context=None):
        return x
