"""Sweeps: a grid of runs from a YAML file, one row per finished run in ``results.csv``.

A sweep file holds fixed settings and one grid (or several, e.g. a compute sweep and a
data sweep); every combination of a grid's values is a *point*::

    base:                      # the same for every point (optional)
      batch_size: 64
    grids:                     # or a single `grid:` mapping
      - method: [plain, augment, frame_averaging]
        model_size: [s, m, l]
        steps: [500, 1000, 2000]
        dataset_size: [4096]
        seed: [0, 1]
      - method: [plain, augment]
        model_size: [m]
        steps: [2000]
        dataset_size: [256, 1024, 4096]
        seed: [0]

A point is ``{**base, **combination}``; its id is a hash of its contents (sorted JSON),
so it does not depend on the order of the grid or the file. Each point runs through a
user-supplied ``run_point(point, out_dir) -> metrics`` in its own folder
``<out>/runs/<point id>/`` (where ``point.json`` is written first), and its metrics are
appended as one row to ``<out>/results.csv``: ``point_id``, the point's keys, then the
metrics. The sweep is resumable: points whose id is already in ``results.csv`` are
skipped. A point that raises is logged, not recorded, and runs again on the next call.

Backends (no scheduler of our own):

- ``local`` (default): one point at a time in this process;
- ``ray``: each point is a Ray task (``pip install symtrain[ray]``). ``address`` joins a
  running cluster (``"auto"`` or ``"ray://host:10001"``; the output folder must then be on
  storage every node sees); without it a local Ray instance is started with ``num_cpus``
  CPUs. ``cpus_per_point``/``gpus_per_point`` are the resources each task asks for.
  Rows are appended by the driver as tasks finish. The nodes must be able to import
  symtrain and ``run_point``'s module (installed there, or shipped with
  ``ray_init={"runtime_env": ...}``).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._optional import import_optional
from ..errors import SymmetryError
from ..lock import FolderLock
from ..records import json_text

log = logging.getLogger(__name__)

RunPoint = Callable[[dict, Path], Mapping[str, Any]]
RESULTS = "results.csv"
EXTRA = "extra"  # the column holding (as JSON) metrics that arrived after the header was written


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, reading ``1e5`` as a float (plain PyYAML reads a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_sweep(source: str | Path | Mapping) -> dict:
    """A sweep specification ``{"base": {...}, "grids": [{...}, ...]}`` from a YAML file or
    a mapping (``grid:`` is accepted for a single grid; scalars count as one value)."""
    spec = dict(source) if isinstance(source, Mapping) else yaml.load(Path(source).read_text(), _Loader)
    if not isinstance(spec, Mapping):
        raise SymmetryError(f"a sweep file holds a mapping with base/grid(s), got {type(spec).__name__}")
    unknown = set(spec) - {"base", "grid", "grids"}
    if unknown:
        raise SymmetryError(f"unknown sweep keys {sorted(unknown)}; expected base, grid or grids")
    if ("grid" in spec) == ("grids" in spec):
        raise SymmetryError("a sweep needs exactly one of `grid` (a mapping) or `grids` (a list of them)")
    grids = [spec["grid"]] if "grid" in spec else list(spec["grids"])
    for grid in grids:
        if not isinstance(grid, Mapping) or not grid:
            raise SymmetryError(f"each grid maps setting names to lists of values, got {grid!r}")
    return {"base": dict(spec.get("base") or {}), "grids": [dict(g) for g in grids]}


def point_id(point: Mapping[str, Any]) -> str:
    """A stable id of a point: the first 12 hex digits of the SHA-1 of its sorted JSON."""
    return hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:12]


def expand(spec: str | Path | Mapping) -> list[dict]:
    """All points of a sweep, in grid order (last key fastest), duplicates removed."""
    spec = load_sweep(spec)
    points, seen = [], set()
    for grid in spec["grids"]:
        values = [v if isinstance(v, list) else [v] for v in grid.values()]
        for combo in itertools.product(*values):
            point = {**spec["base"], **dict(zip(grid, combo, strict=True))}
            if (pid := point_id(point)) not in seen:
                seen.add(pid)
                points.append(point)
    return points


def finished_ids(results: Path) -> set[str]:
    """The point ids recorded in a ``results.csv`` (empty if it does not exist)."""
    if not results.is_file():
        return set()
    return {row["point_id"] for row in complete_rows(results)}


def complete_rows(results: str | Path) -> list[dict[str, str]]:
    """The rows of a ``results.csv`` as strings, without rows cut short (cells missing:
    a short write, e.g. on a full disk; a kill cannot split a row, which is one
    ``write``) and without repeated point ids (the first is kept); each row dropped is
    logged."""
    rows, seen = [], set()
    with Path(results).open(newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            if None in row.values() or None in row:
                log.warning("%s: dropping a row cut short (line %d)", results, reader.line_num)
                continue
            pid = row.get("point_id")
            if pid is not None and pid in seen:
                log.warning("%s: dropping a repeated row of point %s (line %d)", results, pid, reader.line_num)
                continue
            seen.add(pid)
            rows.append(row)
    return rows



def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict, tuple)) else value


def append_row(results: Path, row: Mapping[str, Any], columns: Iterable[str] = ()) -> None:
    """Append one row to ``results`` atomically (one ``write`` on an ``O_APPEND`` file,
    under an exclusive lock). The first row also writes the header: ``columns``, then the
    row's other keys, then ``extra``; later rows follow that header, with keys it lacks
    stored as JSON in the ``extra`` column."""
    results.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = io.StringIO()
        size = os.fstat(fd).st_size
        if size and not _ends_with_newline(results, size):
            text.write("\n")  # after a row cut short by a kill: start a new line
        if size == 0:
            header = list(dict.fromkeys([*columns, *row, EXTRA]))
            csv.writer(text).writerow(header)
        else:
            with results.open(newline="") as f:
                header = next(csv.reader(f))
        extra = {k: v for k, v in row.items() if k not in header}
        cells = {k: _cell(v) for k, v in row.items() if k in header}
        if EXTRA in header:
            cells[EXTRA] = json.dumps(extra, default=str) if extra else ""
        elif extra:
            log.warning("%s has no %r column: dropping %s", results, EXTRA, sorted(extra))
        csv.DictWriter(text, header, restval="").writerow(cells)
        data = text.getvalue().encode()
        if os.write(fd, data) != len(data):
            raise OSError(f"{results}: a short write (disk full?); the row of this point is incomplete "
                          "and will be run again")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _ends_with_newline(path: Path, size: int) -> bool:
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1) == b"\n"


def _run_one(run_point: RunPoint, point: dict, out_dir: str) -> dict:
    """Run one point in its folder (also the body of the Ray task)."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "point.json").write_text(json_text(point, indent=2, sort_keys=True, default=str))
    metrics = run_point(dict(point), folder)
    if not isinstance(metrics, Mapping):
        raise TypeError(f"run_point must return a mapping of metrics, got {type(metrics).__name__}")
    return dict(metrics)


@dataclass
class SweepResult:
    """What one call of :func:`run_sweep` did: ids of the points it ran, skipped (already
    in ``results.csv``) and that failed (id → error message)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list, repr=False)  # point_id + every point's keys


def _record(results: Path, pid: str, point: dict, metrics: dict, outcome: SweepResult) -> None:
    clash = set(point) & set(metrics)
    if clash:
        raise SymmetryError(f"metrics {sorted(clash)} have the names of sweep settings")
    append_row(results, {"point_id": pid, **point, **metrics}, outcome.columns)
    outcome.ran.append(pid)


def _run_local(todo: list[tuple[str, dict]], run_point: RunPoint, out: Path, results: Path,
               outcome: SweepResult) -> None:
    for pid, point in todo:
        try:
            metrics = _run_one(run_point, point, str(out / "runs" / pid))
        except Exception as err:  # noqa: BLE001  (one failed point must not stop the sweep)
            log.exception("sweep point %s failed: %s", pid, point)
            outcome.failed[pid] = f"{type(err).__name__}: {err}"
            continue
        _record(results, pid, point, metrics, outcome)


def import_ray():
    """The ``ray`` module, or an ``ImportError`` saying how to install it."""
    return import_optional("ray", "The ray backend", "ray")


def _run_ray(todo: list[tuple[str, dict]], run_point: RunPoint, out: Path, results: Path,
             outcome: SweepResult, *, address: str | None, num_cpus: int | None,
             cpus_per_point: float, gpus_per_point: float, ray_init: Mapping[str, Any]) -> None:
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address is not None:
            ray.init(address=address, **{"log_to_driver": False, **ray_init})
        else:
            ray.init(**{"num_cpus": num_cpus, "include_dashboard": False, "log_to_driver": False, **ray_init})
    try:
        task = ray.remote(num_cpus=cpus_per_point, num_gpus=gpus_per_point, max_retries=0)(_run_one)
        runner = ray.put(run_point)
        pending = {task.remote(runner, point, str(out / "runs" / pid)): (pid, point) for pid, point in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pid, point = pending.pop(done[0])
            try:
                metrics = ray.get(done[0])
            except Exception as err:  # noqa: BLE001
                log.error("sweep point %s failed: %s\n%s", pid, point, err)
                outcome.failed[pid] = f"{type(err).__name__}: {err}"
                continue
            _record(results, pid, point, metrics, outcome)
    finally:
        if started:
            ray.shutdown()


def run_sweep(sweep: str | Path | Mapping, run_point: RunPoint, out_dir: str | Path, *,
              backend: str = "local", address: str | None = None, num_cpus: int | None = None,
              cpus_per_point: float = 1, gpus_per_point: float = 0,
              ray_init: Mapping[str, Any] | None = None) -> SweepResult:
    """Run every point of ``sweep`` not yet in ``<out_dir>/results.csv`` (see the module
    docstring for the file format, folders and backends). ``ray_init`` holds further
    arguments of ``ray.init`` (e.g. ``runtime_env`` to ship code to a cluster's nodes);
    a Ray instance already initialised by the caller is used as it is."""
    if backend not in ("local", "ray"):
        raise SymmetryError(f"backend must be 'local' or 'ray', got {backend!r}")
    from ..paths import output_file, output_folder

    out = output_folder(out_dir, "out_dir")
    results = output_file(out / RESULTS, "out_dir")
    with FolderLock(out, "sweep folder"):  # one sweep at a time writes results.csv
        return _run_sweep(sweep, run_point, out, results, backend=backend, address=address,
                          num_cpus=num_cpus, cpus_per_point=cpus_per_point,
                          gpus_per_point=gpus_per_point, ray_init=ray_init)


def _run_sweep(sweep, run_point, out: Path, results: Path, *, backend, address, num_cpus, cpus_per_point,
               gpus_per_point, ray_init) -> SweepResult:
    done = finished_ids(results)
    outcome = SweepResult()
    todo = []
    points = expand(sweep)
    outcome.columns = list(dict.fromkeys(["point_id", *(k for p in points for k in p)]))
    for point in points:
        pid = point_id(point)
        (outcome.skipped.append(pid) if pid in done else todo.append((pid, point)))
    log.info("sweep: %d points to run, %d already finished", len(todo), len(outcome.skipped))
    if not todo:
        return outcome
    if backend == "local":
        _run_local(todo, run_point, out, results, outcome)
    else:
        _run_ray(todo, run_point, out, results, outcome, address=address, num_cpus=num_cpus,
                 cpus_per_point=cpus_per_point, gpus_per_point=gpus_per_point, ray_init=dict(ray_init or {}))
    return outcome


def synthetic_run(point: dict, out_dir: Path) -> dict:
    """A stand-in ``run_point`` for smoke tests and demos (no training): a test loss that
    follows ``L = 2·(params·steps·dataset_size)^(−0.15)`` (defaults 1e4, 1e3, 1e3) with 5 %
    log-normal noise seeded by the point, and ``flops = 6·params·steps·batch_size``."""
    import math
    import random

    params = float(point.get("params", 1e4))
    steps, data = float(point.get("steps", 1e3)), float(point.get("dataset_size", 1e3))
    rng = random.Random(point_id(point))
    loss = 2.0 * (params * steps * data) ** -0.15 * math.exp(0.05 * rng.gauss(0, 1))
    return {"test_loss": loss, "flops": 6 * params * steps * float(point.get("batch_size", 32))}


def find_sweep(name: str | Path, folders: Iterable[str] = ()) -> Path:
    """A sweep file: a path as given, or a name (``rigid_sweep``) looked up, like recipes,
    in ``folders`` (``--recipes``), ``$SYMTRAIN_RECIPES`` and the provided recipes, in
    each folder and its ``sweeps/`` subfolder (the provided ones: ``symtrain/recipes/sweeps/``)."""
    from ..train.recipes import recipe_folders

    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    for folder in recipe_folders(list(folders)):
        for candidate in (folder / f"{name}.yaml", folder / "sweeps" / f"{name}.yaml"):
            if candidate.is_file():
                return Path(str(candidate))
    return path
