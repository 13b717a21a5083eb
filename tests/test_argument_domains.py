"""Argument domains at every public entry point, driven by what the package exports.

Every public function and class (``symtrain``, ``symtrain.lie``, ``symtrain.losses``,
``symtrain.metrics``, every registered symmetrizer and interface) declares a
:class:`~symtrain.checks.Domain` for each numeric parameter (``check_args`` /
``__domains__``); each out-of-domain value of each parameter raises ``ArgumentError``
naming the parameter, before anything runs; every default lies in its domain.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest

import symtrain as st
import symtrain.lie
import symtrain.losses
import symtrain.metrics
import symtrain.train.methods  # noqa: F401  (registers the training-only methods on METHODS)
from symtrain.domains import Domain
from symtrain.errors import ArgumentError
from symtrain.symmetrize.interfaces.registry import INTERFACES
from symtrain.symmetrize.interfaces.rotation import VNDropout, VNEncoder, VNLeakyReLU, VNLinear
from symtrain.symmetrize.registry import METHODS

#: Results and records (made by symtrain, not called with user values).
RESULTS = {"EquivarianceError", "SymmetryTestResult", "LayerwiseLie", "Probe", "LieReport",
           "InputSizeScan", "LayerVerdict", "BoundGenerator"}
NUMERIC = ("int", "float")


def public_callables():
    found = {}
    for mod in (st, symtrain.lie, symtrain.losses, symtrain.metrics):
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if callable(obj) and not inspect.ismodule(obj) and name not in RESULTS \
                    and not (inspect.isclass(obj) and issubclass(obj, BaseException)):
                found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    for registry in (METHODS, INTERFACES):
        for name in registry.list():
            obj = registry.get(name)
            if not obj.__module__.startswith("symtrain."):
                continue  # a test's or example's own registration
            found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    for obj in (VNLinear, VNDropout, VNLeakyReLU, VNEncoder):
        found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return found


CALLABLES = public_callables()


def domains_of(obj) -> dict[str, Domain]:
    if dataclasses.is_dataclass(obj):
        return dict(getattr(obj, "__domains__", {}))
    fn = obj.__init__ if inspect.isclass(obj) else obj
    return dict(getattr(fn, "__domains__", {}))


def numeric_parameters(obj) -> list[str]:
    sig = inspect.signature(obj)
    return [p.name for p in sig.parameters.values()
            if any(t in str(p.annotation).replace("Tensor", "") for t in NUMERIC)
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_the_catalogue_is_not_empty():
    assert len(CALLABLES) > 30
    assert sum(bool(domains_of(o)) for o in CALLABLES.values()) > 25


@pytest.mark.parametrize("name", sorted(CALLABLES))
def test_every_numeric_parameter_has_a_domain(name):
    obj = CALLABLES[name]
    missing = set(numeric_parameters(obj)) - set(domains_of(obj))
    assert not missing, f"{name}: numeric parameters without a declared domain: {sorted(missing)}"


def cases():
    for name, obj in sorted(CALLABLES.items()):
        for param, domain in domains_of(obj).items():
            yield pytest.param(name, param, domain, id=f"{name.rsplit('.', 1)[-1]}.{param}")


class Sentinel:
    """A stand-in for the other required arguments: the domain check runs first."""


def call_with(obj, param, value):
    """``obj`` called with ``param=value``; the other required arguments are a valid
    example of their domain, or a sentinel."""
    sig, domains = inspect.signature(obj), domains_of(obj)
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.name == param:
            kwargs[param] = value
        elif p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            stand_in = domains[p.name].example() if p.name in domains else Sentinel()
            if p.kind == p.POSITIONAL_ONLY:
                args.append(stand_in)
            else:
                kwargs[p.name] = stand_in
    return obj(*args, **kwargs)


@pytest.mark.parametrize("name, param, domain", list(cases()))
def test_out_of_domain_values_are_named(name, param, domain):
    obj = CALLABLES[name]
    if dataclasses.is_dataclass(obj):  # a dataclass checks its fields after __init__
        pytest.skip("dataclasses: see test_dataclass_fields_are_checked")
    for bad in domain.bad_values():
        with pytest.raises(ArgumentError) as info:
            call_with(obj, param, bad)
        assert info.value.key.split("[")[0] == param, (name, param, bad, str(info.value))
        assert "must be" in str(info.value)


@pytest.mark.parametrize("name, param, domain", list(cases()))
def test_defaults_lie_in_their_domains(name, param, domain):
    p = inspect.signature(CALLABLES[name]).parameters[param]
    if p.default is not p.empty:
        domain.check(param, p.default)


def test_dataclass_fields_are_checked():
    with pytest.raises(ArgumentError, match="dx: must be a finite number, got nan"):
        st.Shift(float("nan"))
    with pytest.raises(ArgumentError, match="order: must be one of 2, 4, got 3"):
        symtrain.lie.ImageGenerator("rotation", order=3)
    sym = st.Symmetry("SO3", input="points", output="trivial")
    import torch
    with pytest.raises(ArgumentError, match="factor: SO3 has 1 factors"):
        symtrain.lie.ActionGenerator(sym, torch.zeros(3, 3), factor=1)


def test_the_issue_examples():
    """The cases the reliability issue named, through the one mechanism."""
    import torch
    sym = st.Symmetry("SO3", input="points", output="trivial")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 1))
    x = torch.randn(4, 5, 3)
    with pytest.raises(ArgumentError, match="samples: must be a positive integer or None, got -1"):
        st.equivariance_error(model, sym, x, samples=-1)
    for tol in (-1.0, math.nan):
        with pytest.raises(ArgumentError, match="tol: must be a non-negative number"):
            st.assert_equivariant(st.GroupAveraging(model, sym, samples=2), x, tol=tol)
    with pytest.raises(ArgumentError, match=r"sizes\[1\]: must be a positive integer, got 0"):
        st.input_size_check(torch.nn.Conv2d(1, 1, 3), [5, 0])
