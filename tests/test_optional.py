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
