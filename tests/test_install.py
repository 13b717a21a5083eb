"""The package installed as a wheel (not editable) into a temporary folder finds its
recipes: they are package data, read with importlib.resources."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from symtrain.train.recipes import list_recipes

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_lists_every_recipe(tmp_path):
    target, elsewhere, source = tmp_path / "site", tmp_path / "cwd", tmp_path / "src"
    elsewhere.mkdir()
    # A copy of the sources, so the in-tree build leaves nothing in the repository.
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "symtrain", source / "symtrain", ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                            "--no-index", "--quiet", "--target", str(target), str(source)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env=dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert build.returncode == 0, build.stderr[-3000:]
    assert sorted(p.stem for p in (target / "symtrain" / "recipes").glob("*.yaml")) == list_recipes()
    assert (target / "symtrain" / "recipes" / "sweeps" / "rigid_sweep.yaml").is_file()
    assert (target / "symtrain" / "py.typed").is_file()  # PEP 561 marker: type checkers read the hints
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("SYMTRAIN_RECIPES", None)
    where = subprocess.run([sys.executable, "-c", "import symtrain; print(symtrain.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(target), where.stdout + where.stderr
    done = subprocess.run([sys.executable, "-m", "symtrain", "recipes"], capture_output=True, text=True,
                          cwd=elsewhere, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = [line.split()[0] for line in done.stdout.splitlines() if line and not line.startswith(("run one", " "))]
    assert listed == list_recipes()
