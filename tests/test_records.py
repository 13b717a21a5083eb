"""Records are strict JSON: a non-finite number is ``null``, never the ``NaN``/``Infinity``
tokens that strict readers refuse; a metrics record reads back with ``nan`` there."""

import json
import math

import pytest

from symtrain.records import json_text, read_metrics


def strict_loads(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_null_at_any_depth_and_metrics_read_back_as_nan(tmp_path):
    record = {"test/mse": math.nan, "ok": 1.5, "steps": 3, "nested": {"a": [math.inf, -math.inf, 2.0]},
              "name": "nan"}
    text = json_text(record, indent=2)
    assert strict_loads(text) == {"test/mse": None, "ok": 1.5, "steps": 3,
                                  "nested": {"a": [None, None, 2.0]}, "name": "nan"}
    with pytest.raises(ValueError):
        strict_loads(json.dumps(record))  # what the default json.dumps wrote
    path = tmp_path / "metrics.json"
    path.write_text(json_text({"test/mse": math.nan, "val/acc": 0.5}))
    back = read_metrics(path)
    assert math.isnan(back["test/mse"]) and back["val/acc"] == 0.5


def test_values_made_by_a_default_converter_are_checked_too():
    class Odd:
        pass

    assert strict_loads(json_text({"x": Odd(), "y": [math.nan]}, default=lambda v: math.nan)) == \
        {"x": None, "y": [None]}


def test_a_run_with_a_nan_metric_writes_strict_json(tmp_path, monkeypatch):
    """The trainer's metrics.json (written through RunFolder.write_results)."""
    import torch

    from symtrain.train.run_folder import RunFolder

    folder = RunFolder.__new__(RunFolder)
    folder.path = tmp_path
    folder.write_results({"test/mse": math.nan, "test/mae": 1.0}, torch.nn.Linear(2, 2))
    saved = strict_loads((tmp_path / "metrics.json").read_text())
    assert saved == {"test/mse": None, "test/mae": 1.0}
