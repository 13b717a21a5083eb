"""The registries drive the tests, as timm's tests loop over its models: every dataset,
model and method registered is built (and every method trained) from a recipe, so a new
entry is tested with no edit here."""

import math

import pytest
import torch
from pyg_fixtures import local_data
from test_train import smoke

from symtrain.data import create_dataset, list_datasets
from symtrain.models import create_model, list_models
from symtrain.registry import ArgumentError, UnknownNameError
from symtrain.train import ConfigError, Trainer, load_recipe, resolve
from symtrain.train.build import build, build_model, build_task, example_inputs
from symtrain.train.methods import list_methods
from symtrain.train.optim import create_scheduler
from symtrain.train.recipes import find_recipe, list_recipes

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("symtrain_cache")


def recipes_using(section: str, key: str, value: str) -> list[str]:
    """Recipes (smoke budget) whose ``section.key`` is ``value`` (datasets read from local
    files get a fixture root from ``local_data``)."""
    out = []
    for name in list_recipes():
        recipe = load_recipe(find_recipe(name), [], "smoke")
        if getattr(getattr(recipe, section), key) == value:
            out.append(name)
    return out


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_is_registered_in_its_own_module_and_checks_its_arguments(name):
    from symtrain.data.registry import DATASETS

    assert DATASETS.get(name).__module__ == f"symtrain.data.{name}"
    with pytest.raises(ArgumentError, match=rf"^bogus: not an argument of dataset '{name}'"):
        create_dataset(name, bogus=1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_from_a_recipe_and_runs(name, tmp_path):
    users = recipes_using("model", "name", name)
    assert users, f"no recipe trains model {name!r}: add one (the recipe loop then trains it)"
    data = load_recipe(find_recipe(users[0]), [], "smoke").data.name
    recipe = smoke(users[0], *local_data(data, tmp_path))
    task = build_task(recipe)
    torch.manual_seed(0)
    model = build_model(recipe, task)
    x = example_inputs(task)
    out = model(*x) if isinstance(x, tuple) else model(x)
    assert all(torch.isfinite(t).all() for t in (out if isinstance(out, tuple) else (out,)))
    with pytest.raises(ArgumentError, match=rf"^bogus: not an argument of model '{name}'"):
        create_model(name, bogus=1)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_trains_from_a_recipe(method, tmp_path):
    """A method a provided recipe names is built here (the recipe loop of test_train trains
    it); any other is trained on n-body with its default options."""
    users = recipes_using("symmetrization", "method", method)
    if users:
        data = load_recipe(find_recipe(users[0]), [], "smoke").data.name
        assert build(smoke(users[0], *local_data(data, tmp_path)))[2].model is not None
        return
    recipe = smoke("nbody_plain", f"symmetrization.method={method}")
    metrics = Trainer(recipe, tmp_path).fit()
    main = "mse" if recipe.data.name == "nbody" else "accuracy"
    assert math.isfinite(metrics[f"test/{main}"]) and math.isfinite(metrics["test/equivariance_error"])


def test_unknown_names_and_options_name_the_key():
    with pytest.raises(UnknownNameError, match="unknown model 'resnet'; known: .*gin"):
        create_model("resnet")
    with pytest.raises(ConfigError, match=r"symmetrization\.bogus: not an argument of method 'group_averaging'"):
        build(smoke("nbody_ga", "symmetrization.bogus=1"))
    with pytest.raises(ConfigError, match=r"symmetrization\.remul\.bogus: not an argument of EquivarianceLoss"):
        build(smoke("nbody_remul", "symmetrization.remul.bogus=1"))
    with pytest.raises(ConfigError, match=r"symmetrization\.test_samples: method 'none' has no samples"):
        build(smoke("nbody_plain", "symmetrization.test_samples=3"))


def expected_rate(step: int, warm: int, total: int, schedule: str, floor: float) -> float:
    """The schedule in closed form: linear warm-up, then decay to ``floor`` at ``total``."""
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    decay = 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1 - progress
    return floor + (1 - floor) * decay


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
@pytest.mark.parametrize("warm", [0, 1, 5])
def test_learning_rate_schedule_curve(schedule, warm):
    total, floor, lr = 30, 0.1, 2e-3
    recipe = resolve({"data": {"name": "exp"}, "model": {"name": "gin"}},
                     [f"optim.schedule={schedule}", f"optim.warmup_steps={warm}", f"optim.min_lr_ratio={floor}",
                      f"optim.lr={lr}", f"train.steps={total}"])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = create_scheduler(opt, recipe)
    rates = []
    for _ in range(total):
        rates.append(opt.param_groups[0]["lr"] / lr)
        opt.step()
        sched.step()
    rates.append(opt.param_groups[0]["lr"] / lr)
    assert rates == pytest.approx([expected_rate(t, warm, total, schedule, floor) for t in range(total + 1)],
                                  abs=1e-6)
    if schedule != "constant":
        assert rates[-1] == pytest.approx(floor)


def test_one_re_registration_policy_for_every_registry():
    """The same object again is a no-op; another object under a taken name replaces it
    with a warning naming both, in every registry (timm's policy)."""
    import warnings

    from symtrain.actions import Action, register_action
    from symtrain.actions.registry import ACTIONS
    from symtrain.groups.registry import GROUPS, register_group
    from symtrain.registry import Registry
    from symtrain.symmetrize.interfaces.registry import INTERFACES, register_interface
    from symtrain.symmetrize.registry import METHODS, register_symmetrizer

    class First(Action):
        pass

    class Second(Action):
        pass

    reg = Registry("widget")
    cases = [
        (lambda obj: reg.register("w", obj), None),
        (lambda obj: register_action("probe_action")(obj), (ACTIONS, "probe_action")),
        (lambda obj: register_symmetrizer("probe_method", "probe_alias")(obj), (METHODS, "probe_method")),
        (lambda obj: register_interface("probe_interface")(obj), (INTERFACES, "probe_interface")),
        (lambda obj: register_group(r"probe_group", "probe_group")(obj), (GROUPS, "probe_group")),
    ]
    try:
        for register, _ in cases:
            register(First)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                register(First)  # the same object: silent
            with pytest.warns(UserWarning, match="re-registered.*Second.*replaces.*First"):
                register(Second)
        assert reg.get("w") is Second and ACTIONS.get("probe_action") is Second
        assert METHODS.get("probe_method") is Second and METHODS.get("probe_alias") is Second
        assert INTERFACES.get("probe_interface") is Second and GROUPS.get("probe_group").func is Second
    finally:
        for _, where in cases:
            if where:
                where[0].unregister(where[1])
    assert "probe_alias" not in METHODS and "probe_group" not in GROUPS


# --- the Registry type: aliases, patterns, one unknown-name error, discovery -----------------
def test_aliases_resolve_to_their_entry():
    from symtrain.registry import Registry
    from symtrain.symmetrize import FrameAveraging, GroupAveraging, ProbabilisticSymmetrization
    from symtrain.symmetrize.registry import METHODS

    reg = Registry("widget")
    reg.register("square", lambda side=1: side * side, aliases=("sq", "box"))
    assert reg.create("box", side=4) == 16 and reg.canonical("sq") == "square"
    assert reg.list() == ["square"] and reg.aliases() == {"sq": "square", "box": "square"}
    reg.unregister("square")
    assert "sq" not in reg and "box" not in reg
    for alias, cls in (("ga", GroupAveraging), ("fa", FrameAveraging), ("lps", ProbabilisticSymmetrization)):
        assert METHODS.get(alias) is cls and METHODS.canonical(alias) != alias


@pytest.mark.parametrize("name, expected", [
    ("C4", "C4"), ("D6", "D6"), ("SO3", "SO3"), ("so3", "SO3"), ("O(2)", "O2"), ("E3", "E3"),
    ("S_n", "S_n"), ("Sn", "S_n"), ("S5", "S5"), ("S_n x O3", "S_n x O3"), ("S_n × E3", "S_n x E3"),
])
def test_group_names_are_patterns(name, expected):
    from symtrain.groups import create_group

    assert str(create_group(name)) == expected


def test_a_pattern_passes_its_captured_groups_to_the_factory():
    from symtrain.registry import Registry

    reg = Registry("shape", ignore_case=True)
    reg.register_pattern(r"poly(\d+)x(\d+)", lambda a, b: (int(a), int(b)), example="poly3x4")
    assert reg.get("POLY5x7")() == (5, 7) and reg.list() == ["poly3x4"]
    with pytest.raises(UnknownNameError, match=r"unknown shape 'poly5'; known: poly3x4"):
        reg.get("poly5")


def test_a_fallback_finds_interfaces_by_class_name():
    from symtrain.symmetrize.interfaces import PermutationInterface, get_interface_class
    from symtrain.symmetrize.interfaces.registry import INTERFACES

    assert get_interface_class("PermutationInterface") is PermutationInterface
    assert INTERFACES.canonical("PermutationInterface") == "permutation"


def _unknown_name_errors():
    """One bad name per registry, each raised through the registry's public function."""
    import symtrain as st
    from symtrain.actions import create_action
    from symtrain.groups import create_group
    from symtrain.losses import EquivarianceLoss
    from symtrain.symmetrize.interfaces import create_interface
    from symtrain.train.methods import create_method

    sym = st.Symmetry("S_n", input="nodes", output="trivial")
    return {
        "group": (lambda: create_group("SO(33"), "SO3"),
        "action": (lambda: create_action("pointz"), "points"),
        "symmetrizer": (lambda: st.create_symmetrizer("group_averagin", torch.nn.Identity(), sym), "group_averaging"),
        "interface": (lambda: create_interface("permutaton", sym), "permutation"),
        "dataset": (lambda: create_dataset("nbdy"), "nbody"),
        "model": (lambda: create_model("ginn"), "gin"),
        "method": (lambda: create_method("augmnt", torch.nn.Identity(), sym), "augment"),
        "distance": (lambda: EquivarianceLoss(sym, distance="l2_"), "l2"),
    }


@pytest.mark.parametrize("kind", list(_unknown_name_errors()))
def test_one_unknown_name_error_lists_close_matches_and_known_names(kind):
    from symtrain.errors import SymmetryError

    make, close = _unknown_name_errors()[kind]
    with pytest.raises(UnknownNameError) as info:
        make()
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, SymmetryError)
    assert err.kind == kind and close in err.matches and close in err.known
    assert str(err).startswith(f"unknown {kind} {err.name!r}; known: ") and f"did you mean {close!r}" in str(err)
    import pickle

    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_a_registry_discovers_every_module_of_its_package(tmp_path, monkeypatch):
    """A new file in the package is found with no import line anywhere."""
    pkg = tmp_path / "probe_registry_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "registry.py").write_text("from symtrain.registry import Registry\n"
                                     "WIDGETS = Registry('widget', 'probe_registry_pkg')\n")
    (pkg / "square.py").write_text("from .registry import WIDGETS\n"
                                   "@WIDGETS.register('square')\ndef square(side=1):\n    return side * side\n")
    (pkg / "_private.py").write_text("raise RuntimeError('modules starting with _ are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys

    try:
        registry = importlib.import_module("probe_registry_pkg.registry")
        assert "probe_registry_pkg.square" not in sys.modules
        assert registry.WIDGETS.list() == ["square"] and registry.WIDGETS.create("square", side=2) == 4
        assert "probe_registry_pkg.square" in sys.modules
    finally:
        for name in [m for m in sys.modules if m.startswith("probe_registry_pkg")]:
            del sys.modules[name]


@pytest.mark.parametrize("registry, package", [
    ("symtrain.groups.registry:GROUPS", "symtrain.groups"),
    ("symtrain.actions.registry:ACTIONS", "symtrain.actions"),
    ("symtrain.symmetrize.registry:METHODS", "symtrain.symmetrize"),
    ("symtrain.symmetrize.interfaces.registry:INTERFACES", "symtrain.symmetrize.interfaces"),
    ("symtrain.data.registry:DATASETS", "symtrain.data"),
    ("symtrain.models.registry:MODELS", "symtrain.models"),
])
def test_every_registry_discovers_its_package(registry, package):
    import importlib

    module, name = registry.split(":")
    reg = getattr(importlib.import_module(module), name)
    assert reg.package == package and reg.list()


# --- supports: which groups a method can work with -----------------------------------------
@pytest.mark.parametrize("name, group, options, reason", [
    ("group_averaging", "SO3", {}, "SO3 is infinite: exact averaging is impossible"),
    ("ga", "SO3", {"samples": 4}, None),
    ("ga", "D4", {}, None),
    ("frame_averaging", "S_n x E3", {}, None),
    ("fa", "SO2", {}, None),
    ("canonicalization", "C4", {}, None),  # the grid orbit frame (issue 20)
    ("canonicalization", "C8", {}, "no default canonicalizer for C8"),
    ("canonicalization", "O3", {"canonicalizer": "weighted"}, "use them with FrameAveraging"),
    ("canonicalization", "C4", {"canonicalizer": lambda x: None}, None),
    ("canonicalization", "S_n x O3", {}, None),
    ("ps", "S_n", {}, None),
    ("ps", "S_n x SO3", {"interface": "permutation"}, "interface PermutationInterface does not produce"),
    ("ps", "S_n x SO3", {"interface": {"name": "product"}}, None),
    ("learned_canonicalization", "SO3", {"interface": "image"}, "interface ImageInterface does not produce"),
])
def test_symmetrizer_supports(name, group, options, reason):
    from symtrain.symmetrize import symmetrizer_supports

    found = symmetrizer_supports(name, group, **options)
    assert found is None if reason is None else reason in found


def test_a_symmetrizer_declares_supports_and_create_symmetrizer_raises_its_reason():
    import symtrain as st
    from symtrain.symmetrize import Symmetrizer, register_symmetrizer, symmetrizer_supports
    from symtrain.symmetrize.registry import METHODS

    @register_symmetrizer("probe_finite_only")
    class FiniteOnly(Symmetrizer):
        @classmethod
        def supports(cls, group, **options):
            return None if group.is_finite else f"{group} is not finite"

        def weighted_elements(self, x, context):
            raise NotImplementedError

    try:
        assert symmetrizer_supports("probe_finite_only", "C4") is None
        assert symmetrizer_supports("probe_finite_only", "SO2") == "SO2 is not finite"
        assert Symmetrizer.supports(st.create_group("SO3")) is None  # the default: every group
        with pytest.raises(st.UnsupportedGroupError,
                           match="'probe_finite_only' does not support SO2: SO2 is not finite"):
            st.create_symmetrizer("probe_finite_only", torch.nn.Identity(),
                                  st.Symmetry("SO2", input="points", output="points"))
        with pytest.raises(st.UnsupportedGroupError, match="SO3 is infinite"):
            st.create_symmetrizer("ga", torch.nn.Identity(), st.Symmetry("SO3", input="points", output="points"))
        with pytest.raises(UnknownNameError, match="unknown symmetrizer 'augment'"):  # a method, not a symmetrizer
            symmetrizer_supports("augment", "C4")
        with pytest.raises(UnknownNameError, match="unknown symmetrizer 'remul'"):
            st.symmetrize.symmetrizer_options("remul")
    finally:
        METHODS.unregister("probe_finite_only")


# --- one path through build: symmetrizers and training-only methods ------------------------
def test_build_makes_symmetrizers_and_training_methods_through_one_factory():
    from symtrain.augment import Augment
    from symtrain.symmetrize import FrameAveraging, GroupAveraging
    from symtrain.train.methods import Built, create_method

    task, sym, built = build(smoke("nbody_plain", "symmetrization.method=ga", "symmetrization.samples=2"))
    assert isinstance(built, Built) and isinstance(built.model, GroupAveraging) and built.model.samples == 2
    _, _, built = build(smoke("nbody_plain", "symmetrization.method=augment"))
    assert isinstance(built.augment, Augment) and built.criterion is None
    base = build_model(smoke("nbody_plain"), task)
    assert isinstance(create_method("fa", base, sym).model, FrameAveraging)
    remul = create_method("remul", base, sym, task=task, samples=3)
    assert remul.model is base and remul.criterion.samples == 3
    with pytest.raises(ArgumentError, match=r"^bogus: not an argument of method 'ps'") as info:
        create_method("ps", base, sym, bogus=1)
    assert "samples" in info.value.reason and "example" not in info.value.reason  # filled in, not an option


def test_build_errors_name_the_recipe_key():
    with pytest.raises(ConfigError, match=r"symmetrization: method 'group_averaging' .*S_n x E3 is infinite"):
        build(smoke("nbody_plain", "symmetrization.method=group_averaging"))
    with pytest.raises(ConfigError, match=r"symmetrization\.interface\.bogus: not an argument of interface"):
        build(smoke("nbody_ps", "symmetrization.interface.bogus=1"))
    with pytest.raises(ConfigError, match=r"symmetrization\.interface\.name: unknown interface 'permutaton'.*"
                                          r"did you mean 'permutation'"):
        build(smoke("nbody_ps", "symmetrization.interface.name=permutaton"))
    with pytest.raises(ConfigError, match=r"symmetrization\.method: must be one of .*did you mean 'augment'"):
        smoke("nbody_plain", "symmetrization.method=augmnt")
