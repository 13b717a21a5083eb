"""Power-law fits: known exponents recovered from noisy synthetic data, with and without
an offset; the whole results.csv -> fits.json + plots pipeline."""

import csv
import json
import math

import numpy as np
import pytest

from symtrain.cli import main
from symtrain.scaling import fit as ft
from symtrain.scaling import plots


def _noisy_law(a, b, c, noise, n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e8, 1e13, n)
    return x, (a * x ** -b + c) * np.exp(noise * rng.standard_normal(n))


@pytest.mark.parametrize("a, b, c, noise", [(50.0, 0.2, 0.0, 0.05), (200.0, 0.3, 0.05, 0.02)],
                         ids=["plain", "offset"])
def test_recovers_a_known_exponent(a, b, c, noise):
    # Eight noise draws: every fit is within the tolerance, and the 68 % bootstrap interval
    # holds the true exponent in most of them (5.4 of 8 expected; a 68 % interval misses
    # one time in three, so asserting it for a single draw would test the seed). Measured
    # over 40 draws of the offset case: 25 covered (62 %), a calibrated interval.
    covered = 0
    for seed in range(8):
        x, y = _noisy_law(a, b, c, noise, seed=seed)
        law, interval = ft.bootstrap_power_law(x, y, reps=60, seed=seed)
        assert law.offset == (c > 0)  # AICc adds the offset exactly when the data have one
        assert law.b == pytest.approx(b, abs=0.03 if c else 0.01)
        assert interval["b"][1] - interval["b"][0] < (0.06 if c else 0.02)
        covered += interval["b"][0] <= b <= interval["b"][1]
        if c:
            assert law.c == pytest.approx(c, rel=0.2)
    assert covered >= 4


def test_offset_matters_when_present():
    x, y = _noisy_law(a=200.0, b=0.3, c=0.05, noise=0.02)
    law, plain = ft.fit_power_law(x, y), ft.fit_power_law(x, y, offset=False)
    assert plain.b < 0.25 and plain.aicc > law.aicc + 2  # without the offset the exponent is biased
    assert law(1e10) == pytest.approx(200.0 * 1e10 ** -0.3 + 0.05, rel=0.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive"):
        ft.fit_power_law([1, 2], [1, -1])
    with pytest.raises(ValueError, match="distinct"):
        ft.fit_power_law([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="4 points"):
        ft.fit_power_law([1, 2, 3], [3, 2, 1], offset=True)


def test_frontier_is_the_lower_envelope():
    configs = [{"flops": c, "test_loss": loss} for c, loss in [(1, 5), (2, 6), (3, 4), (3, 3.5), (4, 4), (5, 1)]]
    assert [(r["flops"], r["test_loss"]) for r in ft.compute_frontier(configs)] == [(1, 5), (3, 3.5), (5, 1)]


# A Chinchilla-like ground truth L(N, T) = E + A/N^alpha + B/T^beta (T samples seen = steps x
# batch, C = 6 N T; A = 90, B = 30 put N_opt inside the grid of sizes): the frontier is then
# L(C) = E + g C^(-alpha beta/(alpha+beta)) and the compute-optimal size N_opt ∝ C^(beta/(alpha+beta)).
ALPHA, BETA, E0 = 0.5, 0.3, 0.02


def _write_results(path, methods=(("plain", 1.0), ("equivariant", 0.6)), noise=0.02):
    rng = np.random.default_rng(0)
    rows = []
    for method, factor in methods:
        for params in np.geomspace(1e4, 1e6, 7):
            for steps in np.geomspace(100, 1e5, 10).astype(int):
                for seed in (0, 1):
                    samples = steps * 32
                    loss = factor * (E0 + 90 / params ** ALPHA + 30 / samples ** BETA)
                    rows.append({"method": method, "params": int(params), "steps": int(steps), "batch_size": 32,
                                 "dataset_size": 4096, "seed": seed, "flops": 6 * params * samples,
                                 "test_loss": loss * math.exp(noise * rng.standard_normal())})
        for size in (256, 1024, 4096, 16384):  # data sweep at 8 epochs
            steps = 8 * size // 32
            loss = factor * (E0 + 90 / 1e5 ** ALPHA + 30 / (steps * 32) ** BETA + 5 / size ** 0.5)
            rows.append({"method": method, "params": 100000, "steps": steps, "batch_size": 32,
                         "dataset_size": size, "seed": 0, "flops": 6e5 * steps * 32, "test_loss": loss})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_pipeline_on_synthetic_results(tmp_path, capsys):
    _write_results(tmp_path / "results.csv")
    assert main(["fit", str(tmp_path / "results.csv"), "--out", str(tmp_path / "fits"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "plain: L(C) frontier b = " in out and "at C = " in out
    fits = json.loads((tmp_path / "fits" / "fits.json").read_text())
    assert fits["common_compute"]["ratio"]["equivariant/plain"] == pytest.approx(0.6, rel=0.1)
    for name in ("loss_vs_compute", "loss_vs_data", "loss_vs_epochs", "n_opt_vs_compute"):
        assert (tmp_path / "fits" / f"{name}.png").stat().st_size > 10_000
    plain = fits["methods"]["plain"]
    assert plain["runs"] == 7 * 10 * 2 + 4 and plain["configurations"] == 7 * 10 + 4
    comp = plain["compute"]
    assert comp["b_interval"][0] < comp["b"] < comp["b_interval"][1]
    # The frontier of this law is E + g·C^(−alpha·beta/(alpha+beta)) = C^(−0.1875) for E -> 0.
    assert comp["b"] == pytest.approx(ALPHA * BETA / (ALPHA + BETA), abs=0.02)
    # N_opt's exponent: the truth is beta/(alpha+beta) = 0.375, read off a grid of 7 sizes.
    assert plain["n_opt"]["e"] == pytest.approx(BETA / (ALPHA + BETA), abs=0.05)
    assert "epochs=8, params=1e+05" in plain["data"]
    assert any(label.startswith("dataset_size=4096") for label in plain["epochs"])


def test_sparse_results_give_errors_not_crashes(tmp_path):
    # One method with a single run, one with three runs of one model size and no
    # batch_size (so no epochs): fits that cannot be made say why, and the plots still work.
    rows = [{"method": "lonely", "params": 100, "steps": 10, "dataset_size": 64, "seed": 0,
             "flops": 1e6, "test_loss": 1.0}]
    rows += [{"method": "small", "params": 100, "steps": s, "dataset_size": 64, "seed": 0,
              "flops": 1e6 * s, "test_loss": 1.0 / s ** 0.3} for s in (10, 20, 40)]
    with (tmp_path / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fits = ft.fit_all(ft.read_results(tmp_path / "results.csv"), bootstrap=10)
    assert "error" in fits["methods"]["lonely"]["compute"] and "error" in fits["methods"]["small"]["n_opt"]
    assert fits["methods"]["small"]["compute"]["b"] == pytest.approx(0.3)
    assert fits["methods"]["small"]["epochs"] == {} and fits["common_compute"] == {}
    plots.plot_n_opt(fits, tmp_path / "n_opt.png")  # no method has N_opt: the plot says so
    assert (tmp_path / "n_opt.png").is_file()
    assert ft.summarize(fits)[0].startswith("lonely: L(C) frontier too few frontier points")


def test_best_sizes_mark_optima_at_the_edge_of_the_grid():
    """Where bigger is always better (or always worse) the best size is the edge of the
    sizes spanning a budget, marked +1 (-1), and never enters the N_opt fit."""
    def runs(loss):
        return [{"params": n, "flops": n * s, "test_loss": loss(n, s), "dataset_size": 100}
                for n in (1e4, 2e4, 4e4) for s in (10, 20, 40, 80, 160)]
    bigger = ft.best_sizes(runs(lambda n, s: 1 / (n * s) ** 0.5 + 1 / n))
    assert bigger and all(edge == 1 and n == max(sz for sz in (1e4, 2e4, 4e4) if sz * 10 <= c <= sz * 160)
                          for c, n, edge in bigger)
    smaller = ft.best_sizes(runs(lambda n, s: n ** 0.5 / s))
    assert smaller and all(edge == -1 for _, _, edge in smaller)
    assert ft.n_opt_points(runs(lambda n, s: n ** 0.5 / s)) == []
    # an interior optimum (loss minimal at N = 2e4 for every budget) is bracketed: edge 0
    inner = ft.best_sizes(runs(lambda n, s: (math.log(n / 2e4)) ** 2 + 1 / s))
    assert any(edge == 0 and n == pytest.approx(2e4, rel=0.05) for _, n, edge in inner)


def test_steep_laws_at_large_scales_do_not_overflow():
    """``a = A · x0^b`` leaves the float range for FLOP-scale ``x`` and a steep exponent
    (found in a scale study: a crash in ``to_dict``); the fit, its predictions and its
    record stay finite, with ``log10_a`` in place of ``a``."""
    x = np.geomspace(1e14, 1e16, 6)
    y = 3.0 * (x / 1e15) ** -30.0
    law, interval = ft.bootstrap_power_law(x, y, offset=False, reps=20)
    assert law.b == pytest.approx(30.0, rel=1e-6)
    assert law.a == math.inf and law.log10_a == pytest.approx(math.log10(3.0) + 30 * 15, rel=1e-6)
    record = law.to_dict()
    assert record["a"] is None and json.loads(json.dumps(record, allow_nan=False))["log10_a"] > 400
    assert law(1e15) == pytest.approx(3.0, rel=1e-6)
    moderate = ft.fit_power_law([1.0, 10.0, 100.0], [2.0, 1.0, 0.5], offset=False)
    assert moderate.a == pytest.approx(10 ** moderate.log10_a)
    # x0^b out of range with a small A: a itself is in range (1e-20 · 1e320 = 1e300)
    small = ft.PowerLaw(A=1e-20, b=40.0, c=0.0, x0=1e8, offset=False, aicc=0.0, points=3)
    assert small.a == pytest.approx(1e300, rel=1e-9) and small.to_dict()["a"] == pytest.approx(1e300, rel=1e-9)
