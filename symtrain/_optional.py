"""Optional dependencies: import one, or say which extra installs it."""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str, needed_by: str, extra: str, note: str = "") -> ModuleType:
    """``importlib.import_module(module)``, or an ``ImportError`` naming what needs it and
    ``pip install symtrain[extra]`` (``note`` is appended, e.g. the PyPI name)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{needed_by} needs {module}, an optional dependency: "
                          f"pip install symtrain[{extra}]{note}") from err
