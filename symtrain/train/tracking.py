"""Logged values: an Accelerate tracker writing ``metrics.csv``, and the recipe flattened
for trackers' hyper-parameter tables."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from torch import Tensor


def csv_tracker(logging_dir: str | Path):
    """An Accelerate tracker writing ``metrics.csv`` (one row per log call; the columns
    grow as new keys appear) in ``logging_dir``."""
    from accelerate.tracking import GeneralTracker

    class CSVTracker(GeneralTracker):
        name = "csv"
        requires_logging_directory = True

        def __init__(self, run_name: str, logging_dir: str | Path):
            super().__init__()
            self.path = Path(logging_dir) / "metrics.csv"
            self.rows: list[dict] = []
            self.keys: list[str] = []
            if self.path.is_file():
                with open(self.path, newline="") as f:
                    self.rows = [{k: v for k, v in r.items() if v != ""} for r in csv.DictReader(f)]
            self._write()

        @property
        def tracker(self):
            return self

        def truncate(self, step: int) -> None:
            """Drop the rows logged after the checkpoint of ``step`` (a resumed run logs
            them again): those of later steps, and the final test row of a run that
            finished at ``step`` (logged after its last checkpoint)."""
            self.rows = [r for r in self.rows if int(float(r["step"])) < step or (
                int(float(r["step"])) == step and not any(k.startswith("test/") for k in r))]
            self._write()

        def store_init_configuration(self, values: dict) -> None:
            pass

        def log(self, values: dict, step: int | None = None, **kwargs) -> None:
            row = {"step": step}
            row.update({k: (float(v) if isinstance(v, (int, float, Tensor)) else v) for k, v in values.items()})
            self.rows.append(row)
            if set(row) <= set(self.keys):  # same columns: append one line
                with open(self.path, "a", newline="") as f:
                    csv.DictWriter(f, fieldnames=self.keys).writerow(row)
            else:  # new columns: rewrite the file with the wider header
                self._write()

        def _write(self) -> None:
            keys: list[str] = []
            for r in self.rows:
                keys += [k for k in r if k not in keys]
            self.keys = keys or ["step"]
            tmp = self.path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.keys)
                writer.writeheader()
                writer.writerows(self.rows)
            os.replace(tmp, self.path)

    return CSVTracker("symtrain", logging_dir)


def flat_config(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``, values made numbers, strings or booleans
    (TensorBoard's hparams take no others; None becomes ``"none"``)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        elif v is None:
            out[key] = "none"
        else:
            out[key] = str(v)
    return out
