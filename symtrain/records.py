"""Strict JSON for the records a run leaves (``metrics.json``, reports, fits, study
records): a non-finite float (``nan``, ``±inf``) becomes ``null``, since Python's
default ``json.dumps`` writes the non-standard tokens ``NaN``/``Infinity`` that strict
readers (``jq``, JavaScript, many JSON libraries) refuse; :func:`read_json` reads such a
record back with ``null`` numbers of a metrics record as ``nan``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float in its dicts, lists and tuples replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def json_text(obj: Any, *, indent: int | None = None, sort_keys: bool = False,
              default: Callable[[Any], Any] | None = None) -> str:
    """``json.dumps`` of ``obj`` as strict JSON (non-finite floats as ``null``). With
    ``default``, values it converts are made finite-or-null too."""
    if default is not None:  # resolve the custom values first, so their floats are checked too
        obj = json.loads(json.dumps(obj, default=default))
    return json.dumps(finite_or_none(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def read_metrics(path: Path) -> dict[str, Any]:
    """A flat metrics record written by :func:`json_text`: ``null`` values back as ``nan``."""
    return {k: math.nan if v is None else v for k, v in json.loads(Path(path).read_text()).items()}
