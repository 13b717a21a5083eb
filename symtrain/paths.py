"""Paths of the right kind: one check for every place that takes a path (the CLI's options
through :mod:`symtrain.cli._paths`, and the library's run folders, sweeps and fits).

Each check raises :class:`PathKindError` naming ``what`` (the option or argument), the
path and what is wrong, and writes nothing:

- :func:`input_file` / :func:`input_folder`: must exist and be of that kind;
- :func:`output_folder`: an existing writable folder, or a path whose missing folders can
  be created (its nearest existing ancestor is a writable folder, like ``mkdir -p``);
- :func:`output_file`: not a folder, in a folder that exists or can be created.

>>> output_folder("runs/new", "--out")
PosixPath('runs/new')
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SymmetryError


class PathKindError(SymmetryError):
    """A path of the wrong kind: a file where a folder is expected (or the reverse), a
    missing input, a parent that is a file, or a place that cannot be written."""


def _nearest_existing(path: Path) -> Path:
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            return ancestor
    return Path(".")  # pragma: no cover - the root always exists


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def input_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`; it must be an existing file."""
    path = Path(path)
    if path.is_dir():
        raise PathKindError(f"{what}: {path} is a folder, not a file")
    if not path.exists():
        raise PathKindError(f"{what}: {path} does not exist")
    return path


def input_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`; it must be an existing folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathKindError(f"{what}: {path} is a file, not a folder")
    if not path.exists():
        raise PathKindError(f"{what}: {path} is not a folder (it does not exist)")
    return path


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, a folder that exists or can be made and that
    can be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathKindError(f"{what}: {path} is a file, not a folder; choose a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise PathKindError(f"{what}: cannot create {path}: {base} is a file, not a folder")
    if not _writable(base):
        raise PathKindError(f"{what}: cannot write in {base} (no permission or a read-only file system)")
    return path


def output_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, a file (not a folder) whose folder exists or
    can be made and that can be written."""
    path = Path(path)
    if path.is_dir():
        raise PathKindError(f"{what}: {path} is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise PathKindError(f"{what}: cannot write {path} (no permission or a read-only file system)")
    output_folder(path.parent, what)
    return path
