"""Optional dependencies: a missing one is an ImportError that names the extra."""

import sys

import pytest

from symtrain._optional import import_optional


def test_missing_module_names_the_extra(monkeypatch):
    assert import_optional("json", "x", "y").dumps([]) == "[]"
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import fails as if not installed
    from symtrain.data.rigid import import_mujoco

    with pytest.raises(ImportError, match=r"rigid-body data needs mujoco.*pip install symtrain\[physics\]"):
        import_mujoco()
    monkeypatch.setitem(sys.modules, "ray", None)
    from symtrain.scaling.sweep import import_ray

    with pytest.raises(ImportError, match=r"pip install symtrain\[ray\]"):
        import_ray()


def test_missing_escnn_names_the_extra(monkeypatch):
    """Without escnn (the core install; or numpy 2, under which its lie_learn fails to
    import) the features that need it say which extra to install."""
    import symtrain._escnn as escnn_fix

    monkeypatch.setattr(escnn_fix, "_patched", False)
    monkeypatch.setitem(sys.modules, "escnn", None)
    with pytest.raises(ImportError, match=r"p4 ResNet needs escnn.*pip install symtrain\[escnn\].*numpy<2"):
        escnn_fix.ensure_escnn("The p4 ResNet")
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    from symtrain.scaling.fit import _fit_offset

    with pytest.raises(ImportError, match=r"pip install symtrain\[scaling\]"):
        _fit_offset(None, None, 1.0, None)


def test_core_install_needs_neither_escnn_nor_numpy_below_2():
    """The core dependencies leave numpy 2 possible; only the escnn extra pins numpy<2
    (its lie_learn is built against numpy 1.x). .ci/numpy2_core.sh installs the core
    with numpy 2 for real; this is the quick check of the declaration."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    core = [d.replace(" ", "").lower() for d in project["dependencies"]]
    assert not any(d.startswith(("escnn", "lie_learn", "lie-learn", "py3nj")) for d in core), core
    numpy = [d for d in core if d.startswith("numpy")]
    assert numpy and not any("<2" in d for d in numpy), numpy
    assert "numpy<2" in [d.replace(" ", "").lower() for d in project["optional-dependencies"]["escnn"]]


def test_import_and_every_registry_work_without_escnn():
    """Blocking escnn, the package imports and every registry lists its entries (each
    registry imports all modules of its package): nothing imports escnn at import time."""
    import subprocess

    code = """
import sys
sys.modules["escnn"] = None   # as if not installed
import symtrain as st
from symtrain.data import list_datasets
from symtrain.models import list_models
from symtrain.symmetrize.interfaces import list_interfaces
from symtrain.train import list_methods, list_recipes
from symtrain.cli import COMMANDS
assert list_datasets() and list_models() and st.list_symmetrizers() and list_interfaces() and list_methods()
assert list_recipes() and COMMANDS.list()
try:
    st.interfaces.ImageInterface("C4", in_channels=1)
except ImportError as err:
    assert "pip install symtrain[escnn]" in str(err), err
else:
    raise AssertionError("ImageInterface was built without escnn")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr[-3000:]
