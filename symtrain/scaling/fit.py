"""Power-law fits of sweep results, with bootstrap intervals.

Input: a ``results.csv`` (one row per run, see :mod:`.sweep`) with the columns
``method``, ``params`` (model parameters N), ``steps``, ``dataset_size`` (training
samples D), ``seed``, ``flops`` (training compute C in FLOPs) and ``test_loss``;
``epochs`` is read if present, else computed as ``steps · batch_size / dataset_size``
when ``batch_size`` is there. Runs that differ only in ``seed`` are averaged first
(a *configuration* is ``method, params, steps, dataset_size``).

Fits, per method (scipy):

- **compute frontier** ``L(C) = a · C^(−b) [+ c]``, fitted to the frontier
  configurations: those with a lower loss than every configuration of the method with
  less or equal compute (the lower envelope over model sizes and step counts);
- **data** ``L(D)`` at fixed epochs (``data_at="epochs"``, steps grow with D) or at fixed
  steps (``data_at="steps"``), one curve per (epochs or steps, model size) with at least 2
  dataset sizes;
- **epochs** ``L(E)`` at fixed dataset size and model size;
- **compute-optimal model size** ``N_opt(C) = k · C^e``: on a log-spaced grid of budgets,
  each model size whose runs span the budget has its loss interpolated there (log-log,
  between its own runs); where the lowest of these is bracketed by a smaller and a larger
  size, the optimum is the vertex of a parabola in ``log N`` through the three (the
  IsoFLOP idea of Hoffmann et al.); ``k``, ``e`` by least squares in log-log over these
  budgets. Budgets whose optimum is not bracketed are left out, and only runs at the most
  common dataset size enter.

**Offset criterion.** ``offset="auto"`` fits both ``a·x^(−b)`` and ``a·x^(−b) + c``
(``c ≥ 0``) by least squares on ``log L`` and keeps the offset only if its AICc is lower
by at least 2 (and there are at least 5 points, so the 3-parameter fit keeps a degree of
freedom for AICc); ``offset=True``/``False`` forces the choice.

**Uncertainty.** A bootstrap over runs: the rows of each method are resampled with
replacement ``bootstrap`` times, and everything above is recomputed (seed means,
frontier, fit; the offset choice of the full-data fit is kept). Intervals are the
16th–84th percentiles (68 %); plot bands are the same percentiles of the predictions.

:func:`fit_results` writes ``fits.json`` and the PNG plots of :mod:`.plots`
(``loss_vs_compute.png``, ``loss_vs_data.png``, ``loss_vs_epochs.png`` and
``n_opt_vs_compute.png``); :func:`summarize` gives readable lines (``symtrain fit``
prints them).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import import_optional
from ..errors import SymmetryError
from ..records import json_text

log = logging.getLogger(__name__)

CONFIG_KEYS = ("method", "params", "steps", "dataset_size")
PERCENTILES = (16.0, 84.0)  # a 68 % interval
Row = dict[str, Any]


# --------------------------------------------------------------------------- reading

def _number(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_results(path: str | Path) -> list[Row]:
    """Rows of a ``results.csv`` with numbers parsed and ``epochs`` filled in when it can
    be computed (``steps · batch_size / dataset_size``). Rows without a ``test_loss`` or
    ``flops`` are dropped (with a logged warning)."""
    from .sweep import complete_rows

    rows = [{k: _number(v) for k, v in row.items()} for row in complete_rows(path)]
    kept = []
    for row in rows:
        if not isinstance(row.get("test_loss"), float | int) or not isinstance(row.get("flops"), float | int):
            log.warning("dropping a row without a numeric test_loss and flops: %s", row)
            continue
        if not isinstance(row.get("epochs"), float | int) and all(
                isinstance(row.get(k), float | int) for k in ("steps", "batch_size", "dataset_size")):
            row["epochs"] = row["steps"] * row["batch_size"] / row["dataset_size"]
        row["method"] = str(row.get("method", "run"))
        kept.append(row)
    return kept


def average_seeds(rows: Iterable[Row]) -> list[Row]:
    """One row per configuration (``method, params, steps, dataset_size``), numeric
    columns averaged over its runs (seeds); ``runs`` counts them."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[tuple(row.get(k) for k in CONFIG_KEYS)].append(row)
    out = []
    for key, group in groups.items():
        mean = dict(zip(CONFIG_KEYS, key, strict=True))
        for col in ("flops", "test_loss", "epochs", "batch_size"):
            values = [r[col] for r in group if isinstance(r.get(col), float | int)]
            if values:
                mean[col] = float(np.mean(values))
        mean["runs"] = len(group)
        out.append(mean)
    return out


# --------------------------------------------------------------------------- power laws

@dataclass(frozen=True)
class PowerLaw:
    """``L(x) = A · (x / x0)^(−b) + c`` (so ``a = A · x0^b`` in ``L = a · x^(−b) + c``).
    ``aicc`` is the small-sample Akaike criterion of the fit in ``log L``."""

    A: float
    b: float
    c: float
    x0: float
    offset: bool
    aicc: float
    points: int

    @property
    def log10_a(self) -> float:
        """``log10 |a|``, finite where ``a`` itself overflows (``x0^b`` beyond the float
        range: a large reference scale such as FLOPs ~1e15 with a steep exponent)."""
        return math.log10(abs(self.A)) + self.b * math.log10(self.x0) if self.A else -math.inf

    @property
    def a(self) -> float:
        """``A · x0^b``, or ``±inf`` where that exceeds the float range (read
        :attr:`log10_a` then; the fit itself lives in the well-scaled ``A``, ``x0``)."""
        if self.b * math.log10(self.x0) <= 300:  # x0^b itself is in range: the exact product
            return self.A * self.x0 ** self.b
        if self.log10_a > 300:
            return math.copysign(math.inf, self.A)
        return math.copysign(10.0 ** self.log10_a, self.A)  # a small A times an x0^b out of range

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return self.A * (np.asarray(x, dtype=float) / self.x0) ** (-self.b) + self.c

    def to_dict(self) -> dict:
        a = self.a
        return {**asdict(self), "a": a if math.isfinite(a) else None, "log10_a": self.log10_a}


def _aicc(residuals: np.ndarray, k: int) -> float:
    n = len(residuals)
    rss = max(float(residuals @ residuals), 1e-300)
    penalty = 2 * k * (k + 1) / (n - k - 1) if n > k + 1 else math.inf
    return n * math.log(rss / n) + 2 * k + penalty


def _fit_plain(x: np.ndarray, y: np.ndarray, x0: float) -> PowerLaw:
    u, v = np.log(x / x0), np.log(y)
    slope, intercept = np.polyfit(u, v, 1)
    residuals = v - (intercept + slope * u)
    return PowerLaw(A=float(np.exp(intercept)), b=float(-slope), c=0.0, x0=x0, offset=False,
                    aicc=_aicc(residuals, 2), points=len(x))


def _fit_offset(x: np.ndarray, y: np.ndarray, x0: float, start: PowerLaw) -> PowerLaw:
    least_squares = import_optional("scipy.optimize", "The power-law fit with an offset", "scaling").least_squares

    u, v = np.log(x / x0), np.log(y)

    def residuals(theta: np.ndarray) -> np.ndarray:
        log_a, b, log_c = theta
        return np.logaddexp(log_a - b * u, log_c) - v

    def jacobian(theta: np.ndarray) -> np.ndarray:
        log_a, b, log_c = theta
        share = 1 / (1 + np.exp(log_c - log_a + b * u))  # the power term's share of L
        return np.stack([share, -u * share, 1 - share], axis=1)

    best = None
    for share in (0.1, 0.5, 0.9):  # starting offsets as shares of the smallest loss
        c0 = share * y.min()
        a0 = max(start.A - c0, 1e-12 * y.max())
        result = least_squares(residuals, [math.log(a0), max(start.b, 1e-3), math.log(c0)], jac=jacobian,
                               method="lm")
        if best is None or result.cost < best.cost:
            best = result
    log_a, b, log_c = best.x
    return PowerLaw(A=float(np.exp(log_a)), b=float(b), c=float(np.exp(log_c)), x0=x0, offset=True,
                    aicc=_aicc(best.fun, 3), points=len(x))


def fit_power_law(x: Sequence[float], y: Sequence[float], *, offset: bool | str = "auto") -> PowerLaw:
    """Fit ``y = a · x^(−b) [+ c]`` by least squares on ``log y`` (see the module
    docstring for ``offset="auto"``). Needs 2 points (4 with an offset)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (x <= 0).any() or (y <= 0).any():
        raise SymmetryError("power-law fits need positive x and y")
    if len(np.unique(x)) < 2:
        raise SymmetryError(f"a power-law fit needs at least 2 distinct x values, got {len(np.unique(x))}")
    if offset not in (True, False, "auto"):
        raise SymmetryError(f"offset must be True, False or 'auto', got {offset!r}")
    x0 = float(np.exp(np.log(x).mean()))
    plain = _fit_plain(x, y, x0)
    if offset is False or (offset == "auto" and len(x) < 5):
        return plain
    if len(x) < 4:
        raise SymmetryError(f"a power law with an offset needs at least 4 points, got {len(x)}")
    shifted = _fit_offset(x, y, x0, plain)
    if offset is True:
        return shifted
    return shifted if shifted.aicc < plain.aicc - 2 else plain


def bootstrap_power_law(x: Sequence[float], y: Sequence[float], *, offset: bool | str = "auto",
                        reps: int = 200, seed: int = 0) -> tuple[PowerLaw, dict[str, list[float] | None]]:
    """The fit of :func:`fit_power_law` and 68 % bootstrap intervals of ``a``, ``b``, ``c``
    (points resampled with replacement; the offset choice of the full fit is kept)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    law = fit_power_law(x, y, offset=offset)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(reps):
        i = rng.integers(0, len(x), len(x))
        boots.append(_safe(lambda i=i: fit_power_law(x[i], y[i], offset=law.offset)))
    boots = [b for b in boots if b is not None]
    return law, {k: _interval([getattr(b, k) for b in boots]) for k in ("a", "b", "c")}


def fit_line_loglog(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """``(k, e)`` of ``y = k · x^e`` by least squares in log-log."""
    e, log_k = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return float(np.exp(log_k)), float(e)


# --------------------------------------------------------------------------- selections

def compute_frontier(configs: Iterable[Row]) -> list[Row]:
    """The configurations with a lower ``test_loss`` than every one with less or equal
    ``flops``, sorted by compute."""
    front, best = [], math.inf
    for row in sorted(configs, key=lambda r: (r["flops"], r["test_loss"])):
        if row["test_loss"] < best:
            front.append(row)
            best = row["test_loss"]
    return front


def best_sizes(configs: Iterable[Row], budgets: int = 16) -> list[tuple[float, float, int]]:
    """``(C, N_best, edge)`` on a log-spaced grid of ``budgets`` compute values (see
    the module docstring). At each budget only the model sizes whose runs span it take
    part (at least 2). Where the best of them is bracketed (a smaller and a larger size do
    worse), ``N_best`` is the vertex of the parabola in ``log N`` through the three and
    ``edge = 0``; otherwise it is the smallest (``edge = -1``) or largest (``edge = 1``)
    size taking part: the optimum lies at or beyond the edge of the grid. Only the
    configurations at the most common ``dataset_size`` (the compute sweep's) are used, so
    a data sweep does not mix other training sets into the model sizes' curves."""
    configs = list(configs)
    sizes_of_data = [r.get("dataset_size") for r in configs]
    common = max(set(sizes_of_data), key=sizes_of_data.count) if configs else None
    curves: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for row in configs:
        if row.get("dataset_size") != common:
            continue
        curves[float(row["params"])].append((row["flops"], row["test_loss"]))
    sizes = sorted(n for n, pts in curves.items() if len({c for c, _ in pts}) >= 2)
    if len(sizes) < 2:
        return []
    logs = {n: np.log(sorted(curves[n])) for n in sizes}  # [runs, 2]: log C, log L
    low = min(logs[n][0, 0] for n in sizes)
    high = max(logs[n][-1, 0] for n in sizes)
    out = []
    for log_c in np.linspace(low, high, budgets):
        taking = [n for n in sizes if logs[n][0, 0] <= log_c <= logs[n][-1, 0]]
        losses = [float(np.interp(log_c, logs[n][:, 0], logs[n][:, 1])) for n in taking]
        if len(taking) < 2:
            continue
        i = int(np.argmin(losses))
        if not 0 < i < len(taking) - 1:
            out.append((float(np.exp(log_c)), float(taking[i]), -1 if i == 0 else 1))
            continue
        xs, ys = np.log(taking[i - 1:i + 2]), np.array(losses[i - 1:i + 2])
        curv, lin, _ = np.polyfit(xs, ys, 2)  # parabola through the minimum and its neighbours
        log_n = float(np.clip(-lin / (2 * curv), xs[0], xs[-1])) if curv > 0 else float(xs[1])
        out.append((float(np.exp(log_c)), math.exp(log_n), 0))
    return out


def n_opt_points(configs: Iterable[Row], budgets: int = 16) -> list[tuple[float, float]]:
    """``(C, N_opt)`` at the budgets of :func:`best_sizes` whose optimum is bracketed (an
    optimum at the edge of the sizes is not resolved, so it does not enter the fit)."""
    return [(c, n) for c, n, edge in best_sizes(configs, budgets) if edge == 0]


def _curves(configs: list[Row], x: str, fixed: tuple[str, ...]) -> dict[str, list[Row]]:
    """Groups of configurations sharing the ``fixed`` columns with ≥ 2 values of ``x``,
    keyed by a label such as ``"epochs=4, params=1e+04"``."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in configs:
        if all(isinstance(row.get(k), float | int) for k in (x, *fixed)):
            groups[tuple(round(float(row[k]), 6) for k in fixed)].append(row)
    return {", ".join(f"{k}={v:.4g}" for k, v in zip(fixed, key, strict=True)): sorted(g, key=lambda r: r[x])
            for key, g in sorted(groups.items()) if len({r[x] for r in g}) >= 2}


# --------------------------------------------------------------------------- bootstrap

def _interval(values: Sequence[float]) -> list[float] | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return [float(v) for v in np.percentile(values, PERCENTILES)] if len(values) >= 2 else None


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (ValueError, RuntimeError, np.linalg.LinAlgError, TypeError):
        return None


def _law_summary(law: PowerLaw, boots: list[PowerLaw | None], xs: np.ndarray) -> dict:
    boots = [b for b in boots if b is not None]
    preds = np.array([b(xs) for b in boots]) if boots else np.empty((0, len(xs)))
    band = np.percentile(preds, PERCENTILES, axis=0).tolist() if len(boots) >= 2 else None
    return {**law.to_dict(), "b_interval": _interval([b.b for b in boots]),
            "a_interval": _interval([b.a for b in boots]), "c_interval": _interval([b.c for b in boots]),
            "bootstrap_fits": len(boots), "x_range": [float(xs[0]), float(xs[-1])],
            "grid": xs.tolist(), "band": band}


def _resample(rows: list[Row], rng: np.random.Generator) -> list[Row]:
    return [rows[i] for i in rng.integers(0, len(rows), len(rows))]


def fit_method(rows: list[Row], *, offset: bool | str = "auto", bootstrap: int = 200, seed: int = 0,
               data_at: str = "epochs") -> dict:
    """All fits for one method's runs (see the module docstring); each fit has its
    parameters, 68 % bootstrap intervals, and a prediction band on a grid."""
    rng = np.random.default_rng(seed)
    samples = [_resample(rows, rng) for _ in range(bootstrap)]
    configs = average_seeds(rows)
    boot_configs = [average_seeds(s) for s in samples]
    out: dict[str, Any] = {"runs": len(rows), "configurations": len(configs)}

    def frontier_law(cfgs: list[Row], off: bool | str) -> PowerLaw:
        front = compute_frontier(cfgs)
        return fit_power_law([r["flops"] for r in front], [r["test_loss"] for r in front], offset=off)

    front = compute_frontier(configs)
    law = _safe(lambda: frontier_law(configs, offset))
    if law is None:
        out["compute"] = {"error": f"too few frontier points ({len(front)}) for a fit"}
    else:
        xs = np.geomspace(front[0]["flops"], front[-1]["flops"], 50)
        boots = [_safe(lambda c=c: frontier_law(c, law.offset)) for c in boot_configs]
        out["compute"] = {**_law_summary(law, boots, xs),
                          "frontier": [[r["flops"], r["test_loss"]] for r in front]}

    fixed = {"epochs": ("epochs", "params"), "steps": ("steps", "params")}[data_at]
    for name, x, keys in (("data", "dataset_size", fixed), ("epochs", "epochs", ("dataset_size", "params"))):
        out[name] = {}
        for label, group in _curves(configs, x, keys).items():
            fit = _safe(lambda g=group, x=x: fit_power_law([r[x] for r in g], [r["test_loss"] for r in g],
                                                           offset=offset))
            if fit is None:
                continue
            xs = np.geomspace(group[0][x], group[-1][x], 50)
            boots = []
            for cfg in boot_configs:
                sub = _curves(cfg, x, keys).get(label)
                boots.append(sub and _safe(lambda s=sub, x=x, fit=fit: fit_power_law(
                    [r[x] for r in s], [r["test_loss"] for r in s], offset=fit.offset)))
            out[name][label] = {**_law_summary(fit, boots, xs), "x": x,
                                "points": [[r[x], r["test_loss"]] for r in group]}

    best = [list(b) for b in best_sizes(configs)]
    points = [(c, n) for c, n, edge in best if edge == 0]
    if len({n for _, n in points}) >= 2:
        k, e = fit_line_loglog(*zip(*points, strict=True))
        boot_ke = []
        for cfg in boot_configs:
            pts = n_opt_points(cfg)
            boot_ke.append(fit_line_loglog(*zip(*pts, strict=True)) if len({n for _, n in pts}) >= 2 else None)
        boot_ke = [p for p in boot_ke if p is not None]
        xs = np.geomspace(points[0][0], points[-1][0], 50)
        preds = np.array([bk * xs ** be for bk, be in boot_ke])
        out["n_opt"] = {"k": k, "e": e, "e_interval": _interval([be for _, be in boot_ke]),
                        "k_interval": _interval([bk for bk, _ in boot_ke]), "bootstrap_fits": len(boot_ke),
                        "points": [list(p) for p in points], "grid": xs.tolist(),
                        "band": np.percentile(preds, PERCENTILES, axis=0).tolist() if len(boot_ke) >= 2 else None,
                        "best_sizes": best}
    else:
        out["n_opt"] = {"error": "N_opt needs budgets where the best model size is bracketed by a smaller "
                                 "and a larger one (at least 3 sizes with overlapping compute)",
                        "best_sizes": best}
    return out


def compare_at_common_compute(fits: dict[str, dict]) -> dict:
    """The fitted frontier losses of every method at the largest compute inside every
    method's frontier range, and their ratios ``L(row method) / L(column method)``."""
    laws = {m: f["compute"] for m, f in fits.items() if "b" in f.get("compute", {})}
    if len(laws) < 2:
        return {}
    low = max(c["x_range"][0] for c in laws.values())
    high = min(c["x_range"][1] for c in laws.values())
    if low > high:
        return {"error": "the methods' frontiers share no compute range"}
    loss = {m: float(c["A"] * (high / c["x0"]) ** (-c["b"]) + c["c"]) for m, c in laws.items()}
    return {"compute": high, "loss": loss,
            "ratio": {f"{m}/{n}": loss[m] / loss[n] for m in loss for n in loss if m != n}}


def fit_all(rows: list[Row], **kwargs: Any) -> dict:
    """``{"methods": {method: fit_method(...)}, "common_compute": ...}``."""
    by_method: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_method[row["method"]].append(row)
    fits = {m: fit_method(r, **kwargs) for m, r in sorted(by_method.items())}
    return {"methods": fits, "common_compute": compare_at_common_compute(fits),
            "settings": {"percentiles": list(PERCENTILES), **{k: v for k, v in kwargs.items()}}}


def fit_results(results: str | Path, out_dir: str | Path | None = None, *, offset: bool | str = "auto",
                bootstrap: int = 200, seed: int = 0, data_at: str = "epochs",
                loss_label: str = "test loss (MSE)") -> dict:
    """Read ``results.csv``, fit everything, write ``fits.json`` and the four PNG plots
    (:func:`symtrain.scaling.plots.plot_fits`) to ``out_dir`` (default: next to
    ``results``); returns the fits."""
    from ..paths import input_file, output_folder
    from .plots import plot_fits

    results = input_file(results, "results")
    out = output_folder(out_dir if out_dir is not None else results.parent, "out_dir")
    out.mkdir(parents=True, exist_ok=True)
    rows = read_results(results)
    if not rows:
        raise SymmetryError(f"{results} holds no runs with test_loss and flops")
    fits = fit_all(rows, offset=offset, bootstrap=bootstrap, seed=seed, data_at=data_at)
    (out / "fits.json").write_text(json_text(fits, indent=2))
    plot_fits(rows, fits, out, data_at=data_at, loss_label=loss_label)
    return fits


# --------------------------------------------------------------------------- summaries

def interval_text(fit: dict, key: str) -> str:
    """``"0.123 [0.100, 0.150]"``: ``fit[key]`` and its 68 % interval when it has one."""
    interval = fit.get(f"{key}_interval")
    return f"{fit[key]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def summarize(fits: dict) -> list[str]:
    """Readable lines: each method's frontier and N_opt exponents with 68 % intervals, and
    the fitted losses at the largest common compute."""
    lines = []
    for method, fit in fits["methods"].items():
        comp, opt = fit["compute"], fit["n_opt"]
        frontier = f"b = {interval_text(comp, 'b')}" if "b" in comp else comp["error"]
        if comp.get("offset"):
            frontier += f", c = {interval_text(comp, 'c')}"
        n_opt = f"e = {interval_text(opt, 'e')}" if "e" in opt else "not resolved"
        best = opt.get("best_sizes") or []
        if best:
            step = max(1, len(best) // 5)
            n_opt += ("; best size per budget " + ", ".join(
                f"N={n:.2g}{' (smallest)' if edge < 0 else ' (largest)' if edge > 0 else ''} at C={c:.2g}"
                for c, n, edge in best[::step]) + ", among the sizes whose runs span that budget")
        elif "e" not in opt:
            n_opt = opt["error"]
        lines.append(f"{method}: L(C) frontier {frontier}; N_opt(C) {n_opt}")
    common = fits["common_compute"]
    if "loss" in common:
        lines.append(f"at C = {common['compute']:.3g} FLOPs: "
                     + ", ".join(f"{m} {v:.4g}" for m, v in common["loss"].items()))
    return lines
