"""escnn, imported once with one fix applied.

escnn solves for its Clebsch–Gordan and kernel bases with scikit-learn's
``randomized_svd`` whenever scikit-learn is importable, passing it an ``np.matrix``,
which current scikit-learn rejects (``TypeError: np.matrix is not supported``). With
all components requested, the randomized SVD is no cheaper than the exact one, so
escnn is pointed at its own exact fallback (``scipy.linalg.svd``): same null space, and
the same results with or without scikit-learn installed.
"""

from __future__ import annotations

from ._optional import import_optional

_patched = False

# escnn is not a core dependency: its lie_learn needs numpy<2 and its py3nj a Fortran
# compiler, so the [escnn] extra carries its real dependencies and escnn itself is
# installed without its declared ones.
INSTALL_NOTE = ("  (installs escnn's dependencies and numpy<2), then "
                "pip install --no-deps escnn==1.0.11")


def ensure_escnn(needed_by: str = "This feature") -> None:
    """Import escnn and apply the fix above (idempotent). Without escnn (or with numpy 2,
    under which escnn's lie_learn fails to import) this raises an ``ImportError`` that
    names ``needed_by`` and the ``escnn`` extra."""
    global _patched
    if _patched:
        return
    import_optional("escnn", needed_by, "escnn", INSTALL_NOTE)
    from escnn.group import _numerical

    _numerical.randomized_svd = None
    _patched = True
