"""The registries drive the tests, as timm's tests loop over its models: every dataset,
model and method registered is built (and every method trained) from a recipe, so a new
entry is tested with no edit here."""

import math

import pytest
import torch

from symtrain.data import create_dataset, list_datasets
from symtrain.models import create_model, list_models
from symtrain.registry import ArgumentError, UnknownNameError
from symtrain.train import ConfigError, Trainer, load_recipe, resolve
from symtrain.train.build import build, build_model, build_task, example_inputs
from symtrain.train.methods import list_methods
from symtrain.train.optim import create_scheduler
from symtrain.train.recipes import find_recipe, list_recipes
from test_train import smoke

torch.set_num_threads(1)


pytestmark = pytest.mark.usefixtures("symtrain_cache")


def recipes_using(section: str, key: str, value: str) -> list[str]:
    """Recipes (smoke budget) whose ``section.key`` is ``value``; PATTERN needs local files."""
    out = []
    for name in list_recipes():
        recipe = load_recipe(find_recipe(name), [], "smoke")
        if getattr(getattr(recipe, section), key) == value and recipe.data.name != "pattern":
            out.append(name)
    return out


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_is_registered_in_its_own_module_and_checks_its_arguments(name):
    from symtrain.data.registry import DATASETS

    assert DATASETS.get(name).__module__ == f"symtrain.data.{name}"
    with pytest.raises(ArgumentError, match=rf"^bogus: not an argument of dataset '{name}'"):
        create_dataset(name, bogus=1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_from_a_recipe_and_runs(name):
    users = recipes_using("model", "name", name)
    assert users, f"no recipe trains model {name!r}: add one (the recipe loop then trains it)"
    recipe = smoke(users[0])
    task = build_task(recipe)
    torch.manual_seed(0)
    model = build_model(recipe, task)
    x = example_inputs(task)
    out = model(*x) if isinstance(x, tuple) else model(x)
    assert torch.isfinite(out).all()
    with pytest.raises(ArgumentError, match=rf"^bogus: not an argument of model '{name}'"):
        create_model(name, bogus=1)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_trains_from_a_recipe(method, tmp_path):
    """A method a provided recipe names is built here (the recipe loop of test_train trains
    it); any other is trained on n-body with its default options."""
    users = recipes_using("symmetrization", "method", method)
    if users:
        assert build(smoke(users[0]))[2].model is not None
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
