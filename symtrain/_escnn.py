"""escnn, imported once with one fix applied.

escnn solves for its Clebsch–Gordan and kernel bases with scikit-learn's
``randomized_svd`` whenever scikit-learn is importable, passing it an ``np.matrix``,
which current scikit-learn rejects (``TypeError: np.matrix is not supported``). With
all components requested, the randomized SVD is no cheaper than the exact one, so
escnn is pointed at its own exact fallback (``scipy.linalg.svd``): same null space, and
the same results with or without scikit-learn installed.
"""

from __future__ import annotations

_patched = False


def ensure_escnn() -> None:
    """Import escnn and apply the fix above (idempotent)."""
    global _patched
    if _patched:
        return
    from escnn.group import _numerical

    _numerical.randomized_svd = None
    _patched = True
