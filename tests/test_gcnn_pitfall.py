"""The exact-vs-approximate group CNN experiment (Edixhoven et al.): the pooling P4 CNN is
what ``input_size_check`` says it is (exact at 28 px, approximate at 27 and 29, with the
pooling layer that breaks it named) in float32 and float64, a plain CNN of the same
layout fails the check; the p4 layers are equivariant layer by layer; the rotated digits
are what they claim (a C4-rotated digit is ``torch.rot90`` of the upright one; the
bilinear path agrees with it near 90°; uniform angles are spread over the circle); the
new optimizer schedule ``step`` halves the rate every ``step_size`` steps."""

import math

import pytest
import torch

from symtrain import Symmetry, SymmetryError, input_size_check, layer_equivariance
from symtrain.actions.registry import create_action
from symtrain.errors import ShapeError
from symtrain.models.p4_cnn import P4GroupConv, P4LiftConv, cnn, p4_cnn

TOL = 1e-4


def rows(scan):
    return {r["size"]: r for r in scan.rows}


# --- the nets are what input_size_check says -------------------------------------------
def test_p4_cnn_exact_at_28_approximate_at_27_and_29(dtype):
    torch.manual_seed(0)
    net = p4_cnn(planes=3).eval().to(dtype)
    scan = input_size_check(net, [27, 28, 29], "C4", dtype=dtype, tol=TOL,
                            generator=torch.Generator().manual_seed(1))
    by = rows(scan)
    assert scan.exact_sizes == [28]
    assert by[28]["error"] < (1e-5 if dtype == torch.float32 else 1e-12)
    assert by[27]["error"] > 1e-2 and by[29]["error"] > 1e-2  # ≫ tol: approximate, not rounding
    for r in scan.rows:  # the grid geometry predicts the measurement
        assert r["predicted_exact"] == r["exact"]
    # the layer that breaks exactness is named, with the side it sees
    assert by[28]["broken_by"] == []
    assert by[29]["broken_by"] == ["pool1 (29 px)"]  # 29 → 14: only the first pooling is off-centre
    assert by[27]["broken_by"] == ["pool1 (27 px)", "pool2 (13 px)"]
    assert scan.downsamplings == 2
    assert "n ≡ 0 (mod 2^2) = 0 (mod 4)" in scan.explanation and "pool1, pool2 (2×2, stride 2" in scan.explanation
    assert "off-centre at pool1 (27 px)" in str(scan)


def test_plain_cnn_of_the_same_layout_fails_the_check(dtype):
    torch.manual_seed(0)
    net = cnn(channels=8).eval().to(dtype)
    scan = input_size_check(net, [28], "C4", dtype=dtype, generator=torch.Generator().manual_seed(1))
    assert scan.exact_sizes == [] and scan.rows[0]["error"] > 1e-2
    assert scan.rows[0]["predicted_exact"]  # its grid is centred: the filters are what break it


def test_p4_layers_are_equivariant_layer_by_layer_and_the_plain_ones_are_not(dtype):
    torch.manual_seed(0)
    net = p4_cnn(planes=2).eval().to(dtype)
    x = torch.randn(2, 1, 28, 28, dtype=dtype)
    regular = create_action("image", fiber="regular")
    maps = [n for n, _ in net.named_children() if n != "fc"]
    verdicts = layer_equivariance(net, x, Symmetry("C4", input="image", output="trivial"),
                                  layers=[(n, getattr(net, n)) for n in maps],
                                  layer_actions={n: regular for n in maps}, tol=TOL)
    assert [v.layer for v in verdicts] == maps + ["(output)"]
    assert maps[:6] == ["conv1", "bn1", "conv2", "bn2", "pool1", "conv3"]  # forward order
    assert all(v.equivariant for v in verdicts), "\n".join(map(str, verdicts))
    # at 27 px the first layer that is not equivariant is the first pooling
    off = layer_equivariance(net, torch.randn(2, 1, 27, 27, dtype=dtype),
                             Symmetry("C4", input="image", output="trivial"),
                             layers=[(n, getattr(net, n)) for n in maps], layer_actions={n: regular for n in maps},
                             tol=TOL)
    assert next(v.layer for v in off if not v.equivariant) == "pool1"
    assert all(v.equivariant for v in off[:4])
    # a plain conv read as regular fields is not: the check can fail
    plain = torch.nn.Conv2d(8, 8, 3, padding=1).to(dtype)
    bad = layer_equivariance(plain, torch.randn(2, 8, 12, 12, dtype=dtype), "C4",
                             layers=[("conv", plain)], layer_actions={"conv": regular}, tol=TOL)
    assert bad[0].equivariant is False


def test_p4_filter_banks_are_rotated_copies():
    lift = P4LiftConv(1, 1, 3, bias=False)
    w, _ = lift.filters()
    for r in range(4):
        assert torch.equal(w[r, 0], torch.rot90(lift.weight[0, 0], r))
    conv = P4GroupConv(1, 1, 3, bias=False)
    bank, _ = conv.filters()  # (4 out rotations, 4 in rotations, 3, 3)
    base = conv.weight.reshape(4, 3, 3)
    for r in range(4):
        for s in range(4):
            assert torch.equal(bank[r, s], torch.rot90(base[(s - r) % 4], r))


def test_models_reject_bad_arguments_and_small_inputs():
    with pytest.raises(ValueError, match="planes=0: expected a positive integer"):
        p4_cnn(planes=0)
    with pytest.raises(ValueError, match="x: expected images"):
        p4_cnn(planes=1)(torch.randn(1, 1, 12, 12))


# --- the rotated digits -------------------------------------------------------------------
def test_quarter_turns_are_rot90_and_the_bilinear_path_agrees(dtype):
    from symtrain.data.digits_rotated import rotate_images

    x = torch.randn(3, 2, 9, 9, dtype=dtype)
    for k in range(4):
        assert torch.equal(rotate_images(x, 90 * k), torch.rot90(x, k, dims=(-2, -1)))
    assert torch.equal(rotate_images(x, -90), torch.rot90(x, 3, dims=(-2, -1)))
    per_image = rotate_images(x, torch.tensor([0.0, 90.0, 180.0]))
    for i in range(3):
        assert torch.equal(per_image[i], torch.rot90(x[i], i, dims=(-2, -1)))
    # the resampling path (any other angle) turns the same way: just off 90° it is rot90
    smooth = torch.nn.functional.interpolate(torch.randn(2, 1, 5, 5, dtype=dtype), size=(21, 21),
                                             mode="bilinear", align_corners=False)
    near = rotate_images(smooth, 90 - 1e-4)
    assert (near - torch.rot90(smooth, 1, dims=(-2, -1))).abs().max() < 1e-3
    assert (rotate_images(smooth, 270 + 1e-4) - torch.rot90(smooth, 3, dims=(-2, -1))).abs().max() < 1e-3
    # uncovered corners get the background
    corner = rotate_images(torch.full((1, 1, 9, 9), 5.0, dtype=dtype), 45, background=-1.0)
    assert corner[0, 0, 0, 0] == -1.0 and corner[0, 0, 4, 4] == pytest.approx(5.0)


def test_rotate_images_names_bad_arguments():
    from symtrain.data.digits_rotated import rotate_images

    with pytest.raises(ShapeError, match="x: expected square images"):
        rotate_images(torch.randn(1, 1, 4, 5), 10)
    with pytest.raises(ShapeError, match="degrees: expected one angle or one per image"):
        rotate_images(torch.randn(3, 1, 4, 4), torch.zeros(2))


def test_rotated_digits_are_what_they_claim():
    pytest.importorskip("sklearn")
    from symtrain.data.digits_rotated import rotate_images, rotated_digits

    upright, background = rotated_digits(28, "none")
    c4, bg_c4 = rotated_digits(28, "c4")
    assert bg_c4 == background and background < -0.1  # same standardisation; empty pixels are dark
    assert upright["train"][0].shape[1:] == (1, 28, 28) and len(upright["test"][1]) == 359
    # every c4 training digit is a quarter-turn rotation of its upright self (same labels, split)
    x, xc = upright["train"][0], c4["train"][0]
    assert torch.equal(upright["train"][1], c4["train"][1])
    turns = torch.stack([(xc - torch.rot90(x, k, dims=(-2, -1))).flatten(1).abs().amax(1) for k in range(4)], 1)
    assert bool((turns.amin(1) == 0).all())
    assert set(turns.argmin(1).tolist()) == {0, 1, 2, 3}
    assert torch.equal(c4["test"][0], upright["test"][0])  # the test split stays upright
    # a rotated test split equals rotating the upright one (the background fills the corners)
    turned, _ = rotated_digits(28, "none", test_angle=30.0)
    expected = rotate_images(upright["test"][0], 30.0, background)
    assert torch.allclose(turned["test"][0], expected, atol=1e-5)
    assert torch.equal(rotated_digits(28, "none", test_angle=90.0)[0]["test"][0],
                       torch.rot90(upright["test"][0], 1, dims=(-2, -1)))


def test_rotated_digits_name_bad_arguments():
    pytest.importorskip("sklearn")
    from symtrain.data.digits_rotated import rotated_digits

    with pytest.raises(SymmetryError, match="rotate='random': expected one of none, uniform, c4"):
        rotated_digits(28, "random")
    with pytest.raises(SymmetryError, match="size=4: expected an integer side of at least 8"):
        rotated_digits(4)
    with pytest.raises(SymmetryError, match="test_angle=nan"):
        rotated_digits(28, test_angle=float("nan"))
    with pytest.raises(ValueError, match="sum below 1"):
        rotated_digits(28, val_fraction=0.6, test_fraction=0.5)


def test_uniform_angles_cover_the_circle():
    from symtrain.data.digits_rotated import draw_angles

    angles = draw_angles(4000, "uniform", torch.Generator().manual_seed(0))
    assert 0 <= float(angles.min()) and float(angles.max()) < 360
    counts = torch.histc(angles, bins=8, min=0, max=360)
    assert counts.min() > 400  # 500 expected per 45° bin
    assert (torch.remainder(draw_angles(100, "c4", torch.Generator()), 90) == 0).all()
    with pytest.raises(SymmetryError, match="rotate='upright': expected one of none, uniform, c4"):
        draw_angles(4, "upright", torch.Generator())


def test_angle_accuracy_of_an_exact_net_repeats_every_quarter_turn():
    from symtrain.data.digits_rotated import angle_accuracy

    torch.manual_seed(0)
    net = p4_cnn(planes=2, num_classes=3)
    x, y = torch.randn(40, 1, 28, 28), torch.randint(0, 3, (40,))
    acc = angle_accuracy(net, x, y, [0, 20, 90, 110, 180, 270])
    assert net.training  # its mode is restored
    assert acc[0.0] == acc[90.0] == acc[180.0] == acc[270.0] and acc[20.0] == acc[110.0]
    assert all(0 <= v <= 1 for v in acc.values())


# --- the paper's schedule ----------------------------------------------------------------
def test_step_schedule_halves_the_rate_every_step_size():
    from symtrain.train import ConfigError, resolve
    from symtrain.train.optim import create_optimizer, create_scheduler

    base = {"data": {"name": "digits_rotated"}, "model": {"name": "p4_cnn"}, "train": {"steps": 10}}
    recipe = resolve({**base, "optim": {"lr": 0.01, "schedule": "step", "step_size": 3, "gamma": 0.5}})
    net = torch.nn.Linear(2, 2)
    opt = create_optimizer(net, recipe)
    sched = create_scheduler(opt, recipe)
    rates = []
    for _ in range(7):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates == pytest.approx([0.01] * 3 + [0.005] * 3 + [0.0025])
    with pytest.raises(ConfigError, match="optim.step_size: missing"):
        resolve({**base, "optim": {"schedule": "step"}})
    with pytest.raises(ConfigError, match="optim.step_size: only used by schedule 'step'"):
        resolve({**base, "optim": {"step_size": 3}})
    assert not math.isnan(rates[-1])


# --- does the data have the symmetry? (symtrain diagnose on the new recipes) -------------
QUICK = ["--permutations", "200", "--steps", "100", "--hidden", "32", "--samples", "400"]


@pytest.mark.parametrize("rotate, symmetric", [("none", False), ("c4", True), ("uniform", True)])
def test_diagnose_digits_under_c4_upright_broken_augmented_symmetric(rotate, symmetric, capsys):
    """Real digits, at a fixed seed: upright ones are not C4-symmetric (AUC ≫ 0.5); made
    symmetric by rotating each by a random quarter turn, or a uniform angle, they look
    symmetric (AUC ≈ 0.5, large p)."""
    pytest.importorskip("sklearn")
    from symtrain.cli import main

    previous = torch.get_num_threads()
    try:
        code = main(["diagnose", "gcnn_digits_exact", "--budget", "smoke", "--set", f"data.rotate={rotate}",
                     "data.size=12", *QUICK])
    finally:
        torch.set_num_threads(previous)
    out = capsys.readouterr().out
    assert code == 0, out
    auc = float(out.strip().splitlines()[-2].split("=")[1])
    p = float(out.strip().splitlines()[-1].split("=")[1])
    if symmetric:
        assert abs(auc - 0.5) < 0.1 and p > 0.05, out
    else:
        assert auc > 0.8 and p < 0.01, out


# --- the benches, at smoke size --------------------------------------------------------------
def run_bench(name: str, argv: list[str]) -> int:
    """``bench/<name>.py``'s ``main(argv)`` (torch's thread count restored after)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    previous = torch.get_num_threads()
    try:
        return bench.main(argv)
    finally:
        torch.set_num_threads(previous)


def test_bench_prints_the_table_and_the_gap_and_saves_the_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    import re

    assert run_bench("gcnn_pitfall", ["--budget", "smoke", "--seeds", "1", "--workers", "1", "--trainings", "upright",
                                      "--angles", "0", "90", "180", "270", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"gcnn_rotated_gap=-?[0-9.]+", out.strip().splitlines()[-1]), out
    assert "exactness error of approx at 27 px" in out and "pool1 (27 px)" in out
    assert "input sizes exactly C4-equivariant (relative error <= 0.0001): [28]" in out
    folder, = tmp_path.iterdir()
    assert (folder / "accuracy_vs_angle.png").stat().st_size > 10_000
    runs = __import__("json").loads((folder / "results.json").read_text())["runs"]
    assert len(runs) == 3 and {r["net"] for r in runs} == {"exact", "approx", "cnn"}
    exact = [r for r in runs if r["net"] == "exact"]
    assert all(r["exactness_error"] < 1e-5 for r in exact)
    # the exact net's accuracy is the same at every quarter turn, whatever it learned
    assert all(len({round(r["accuracy"][a], 9) for a in ("0", "90", "180", "270")}) == 1 for r in exact)


def test_bench_refuses_mislabelled_sizes(tmp_path):
    with pytest.raises(SystemExit, match="gcnn_digits_approx: data.size=28 is an exact size"):
        run_bench("gcnn_pitfall", ["--budget", "smoke", "--set", "data.size=28", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())  # nothing written


def test_data_symmetry_bench_runs_a_row(capsys):
    pytest.importorskip("sklearn")
    assert run_bench("data_symmetry", ["--only", "upright", "--samples", "300", "--steps", "100",
                                       "--permutations", "100"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "data_symmetry_broken=1", lines
    assert lines[-2].startswith("digits upright, C4") and lines[-2].endswith("broken")
