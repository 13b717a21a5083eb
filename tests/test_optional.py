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
