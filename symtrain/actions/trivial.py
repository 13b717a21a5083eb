from __future__ import annotations

from .base import Action


class Trivial(Action):
    """The trivial action ``g·x = x``: invariant outputs (class logits, energies) and
    inputs the group does not move. Any tensor ``[B, ...]``."""

    def act(self, group, g, x, context=None):
        return x

    def act_factor(self, factor, g, x, context):
        return x
