"""A :class:`Symmetry` binds a group to how it acts on a model's input and output;
:meth:`Symmetry.probe` is the one "sample g, transform, compare" that the equivariance
metric, the REMUL loss and :class:`~symtrain.augment.Augment` share. Also the two helpers
every consumer of a model shares: :func:`call_model` and :func:`reference_tensor`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from .actions.base import Action
from .actions.registry import create_action
from .checks import check_finite_input, check_samples
from .errors import DTypeError, ShapeError, UnsupportedGroupError
from .groups.base import Device, DType, Element, Group, GroupContext, element_batch_size, element_tile
from .groups.registry import create_group
from .tree import reference_tensor  # noqa: F401  (re-exported: symtrain.reference_tensor)


def call_model(model: Callable[..., Any], x: Any) -> Any:
    """Call ``model`` on an input; a tuple is unpacked into positional arguments."""
    return model(*x) if isinstance(x, tuple) else model(x)


@dataclass(frozen=True, init=False)
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
    output: Action

    def __init__(self, group: Group | str, input: Action | str, output: Action | str = "trivial") -> None:
        """``group``: a :class:`Group` or a name (``"E3"``, ``"S_n x O3"``); ``input`` and
        ``output``: :class:`~symtrain.actions.Action` objects or action names."""
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "output", output)
        self.__post_init__()

    def __post_init__(self) -> None:
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
        masks with padding between real nodes), holds NaN/inf (eager mode only), or holds
        integer coordinates or pixels where a continuous group must move them
        (:class:`~symtrain.errors.DTypeError`)."""
        self.input.check(x, self.group)
        check_finite_input(x)
        self.check_dtypes(x)

    def check_dtypes(self, x: Any) -> None:
        """Rotations, reflections by arbitrary angles and translations by real amounts
        need floating-point data: integer point coordinates or pixels under a continuous
        group are a :class:`~symtrain.errors.DTypeError` naming the dtype (finite groups
        permute integer data exactly, so it passes)."""
        if not any(f.is_continuous for f in self.group.factors):
            return
        for what, read in (("point coordinates (or vectors)", self.input.points), ("pixels", self.input.pixels)):
            try:
                t = read(x)
            except UnsupportedGroupError:  # the action holds no such data
                continue
            if t is not None and not (t.is_floating_point() or t.is_complex()):
                raise DTypeError(f"the input's {what} are {t.dtype}, but {self.group} moves them by real "
                                 "amounts (rotations, translations), which needs floating-point data; "
                                 "convert them with .float() (or .double())")

    def check_not_empty(self, x: Any, what: str) -> None:
        """Raise :class:`~symtrain.errors.ShapeError` if ``x`` holds no inputs: ``what``
        (a metric, a loss) has nothing to average over and would return NaN."""
        if self.input.batch_size(x) == 0:
            raise ShapeError(f"{what} got an empty batch (0 inputs): there is nothing to measure; "
                             "pass at least one input")

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
               device: Device = None, dtype: DType = None) -> Element:
        """``k`` elements per input (``[B·k]``, b-major) for an input with ``context``."""
        batch = context.batch() * k
        return self.group.sample(batch, context=context.repeat(k), generator=generator,
                                 device=device, dtype=dtype)

    def all_elements(self, context: GroupContext, device: Device = None, dtype: DType = None) -> Element:
        """Every element of a finite group, tiled over the batch: ``[B·|G|]``, b-major."""
        elems = self.group.elements(context=context, device=device, dtype=dtype)
        return element_tile(elems, context.batch())

    def probe(self, x: Any, samples: int | None = None, generator: torch.Generator | None = None, *,
              random_translations: bool = False) -> "Probe":
        """Group elements for the inputs ``x`` and the transformed inputs ``g·x``.

        Args:
            x: a batch of ``B`` inputs of :attr:`input` (checked here, once).
            samples: ``k`` random elements per input; ``None``: every element of a finite
                group (``k = |G|``, shared by all inputs; 16 random ones when the group
                cannot list them for this batch, or is infinite).
            generator: ``torch.Generator`` for the draws.
            random_translations: translations of E(d)/SE(d) drawn from
                ``N(0, translation_scale² I)`` (augmented copies really move) instead of
                set to the inputs' centroids (see :mod:`symtrain.groups.euclidean`).
        """
        samples = check_samples("samples", samples)
        self.check_input(x)
        self.check_not_empty(x, "a probe (equivariance error, REMUL loss, augmentation)")
        context = self.context(x)
        ref = reference_tensor(x)
        device, dtype = ref.device, ref.dtype if ref.is_floating_point() else None
        g = None
        if samples is None and self.group.is_finite:
            try:
                g = self.all_elements(context, device=device, dtype=dtype)
            except ValueError:  # e.g. S_n on a padded batch, or too large to list
                g = None
        if g is None:
            drawn = replace(context, centroid=None) if random_translations else context
            g = self.sample(drawn, samples or 16, generator, device=device, dtype=dtype)
        k = element_batch_size(g) // context.batch()
        inputs = self.act_input(g, self.input.repeat(x, k, context), context.repeat(k), check=False)
        return Probe(self, x, context, g, k, inputs)

    def __str__(self) -> str:
        return f"{self.group} acting on {self.input!r} -> {self.output!r}"


def _stochastic(model: Any) -> bool:
    return bool(getattr(model, "stochastic", False))


class Compared(NamedTuple):
    """A model's outputs on a :class:`Probe`: ``f(g·x)`` and ``g·f(x)`` for the ``B·k``
    copies (b-major), and how they were measured (:meth:`Probe.outputs`)."""

    f_gx: Any
    g_fx: Any
    estimate: str


#: How :meth:`Probe.outputs` ran the model: ``"deterministic"`` (it has no randomness),
#: ``"fixed draw"`` (a stochastic wrapper run with one draw of its randomness, transformed
#: with the input: an exact check), ``"monte-carlo"`` (a stochastic model, every call
#: drawing anew: the comparison is itself random).
ESTIMATES = ("deterministic", "fixed draw", "monte-carlo")


@dataclass(frozen=True)
class Probe:
    """One "sample ``g``, transform, compare" on a batch (made by :meth:`Symmetry.probe`).

    - ``x``: the ``B`` inputs; ``context``: their :class:`GroupContext`;
    - ``elements``: ``[B·k]`` group elements, b-major (row ``b·k + j`` is the ``j``-th
      element of input ``b``); ``k``: elements per input;
    - ``inputs``: ``g·x``, the ``B·k`` transformed copies (b-major).
    """

    symmetry: Symmetry
    x: Any
    context: GroupContext
    elements: Element
    k: int
    inputs: Any

    @property
    def copies_context(self) -> GroupContext:
        """The context of the ``B·k`` copies."""
        return self.context.repeat(self.k)

    def act_output(self, y: Any) -> Any:
        """``g·y`` for outputs or labels ``y`` of the ``B`` inputs: ``B·k`` rows, b-major
        (checked against the output action)."""
        sym = self.symmetry
        return sym.act_output(self.elements, sym.output.repeat(y, self.k, self.context), self.copies_context)

    def rows(self, y: Any) -> Tensor:
        """Outputs of the ``B·k`` copies as rows ``[B·k, D]`` (see :meth:`Action.rows`)."""
        return self.symmetry.output.rows(y, self.copies_context)

    def _fixed_draw(self, model: Any) -> tuple[Any, Any] | None:
        """``(draw, moved draw)`` of a stochastic wrapper for these inputs and elements, or
        ``None`` where it offers none for this probe's symmetry."""
        fix, theirs = getattr(model, "fixed_draw", None), getattr(model, "symmetry", None)
        if not callable(fix) or not isinstance(theirs, Symmetry):
            return None
        if theirs == self.symmetry:
            draw = fix(self.x, self.context)
            return None if draw is None else (draw, draw.moved(self.elements, self.k, self.context))
        try:  # the wrapper's group must be made of this probe's factors
            self.symmetry.group.part(self.elements, theirs.group)
        except UnsupportedGroupError:
            return None
        draw = fix(self.x, theirs.context(self.x))
        if draw is None:
            return None
        try:
            return draw, draw.moved_in(self.symmetry.group, self.elements, self.k, self.context)
        except UnsupportedGroupError:
            return None

    def outputs(self, model: Callable[..., Any], fx: Any = None, *, exact: bool = True) -> Compared:
        """``f(g·x)`` and ``g·f(x)``, each one batch of ``B·k`` (``f(x)`` one of ``B``).

        ``exact``: when ``model`` is stochastic and offers it (a symtrain wrapper's
        ``fixed_draw``, see :class:`~symtrain.symmetrize.Symmetrizer`), one draw of its
        randomness is fixed for ``x`` and moved with the input for ``g·x`` (noise
        transformed, sampled elements ``h`` becoming ``g h``), so a correct model matches
        to rounding. The draw moves with elements of the wrapper's own symmetry, so this
        needs ``model.symmetry`` to be this probe's; otherwise, and with ``exact=False``,
        every call draws anew (a Monte-Carlo comparison). A wrapper for a group that is
        some of this probe's factors (an E(3) wrapper of a permutation-equivariant
        backbone, probed with S_n × E(3)) is checked with a fixed draw too where the draw
        can move with the whole group (:meth:`FixedDraw.moved_in
        <symtrain.symmetrize.FixedDraw.moved_in>`), else by Monte-Carlo.
        ``fx``: ``f(x)`` if already computed (not used with a fixed draw).
        """
        draw = self._fixed_draw(model) if exact and _stochastic(model) else None
        if draw is None:
            f_gx = call_model(model, self.inputs)
            if fx is None:
                fx = call_model(model, self.x)
            # Asked again: a wrapper may learn only from these inputs that it draws (a
            # frame sampled past its size limit), or that it does not.
            if not _stochastic(model):
                return Compared(f_gx, self.act_output(fx), "deterministic")
            draw = self._fixed_draw(model) if exact else None
            if draw is None:
                return Compared(f_gx, self.act_output(fx), "monte-carlo")
        draw, moved = draw
        fx = draw(self.x)
        f_gx = moved(self.inputs)
        return Compared(f_gx, self.act_output(fx), "fixed draw")
