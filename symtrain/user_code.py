"""A user's own registry entries: a module (``my_pkg.methods``) or a ``.py`` file that
registers datasets, models or methods, imported before a recipe names them
(``symtrain train --import``, ``symtrain sweep --import``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def import_user_code(target: str) -> None:
    """Import a module by dotted name, or a Python file by path (registering its entries).
    A missing file raises ``ImportError`` naming it."""
    path = Path(target)
    if path.suffix == ".py" or path.is_file():
        if not path.is_file():
            raise ImportError(f"no such file: {target}")
        name = f"symtrain_user_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)
