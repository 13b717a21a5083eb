"""Small graphs with known automorphism groups, as ``[n, n]`` int64 adjacency matrices
(shared by the automorphism and minimal-frame tests)."""

from __future__ import annotations

import numpy as np


def cycle(n: int) -> np.ndarray:
    """C_n: |Aut| = 2n."""
    e = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        e[i, (i + 1) % n] = e[(i + 1) % n, i] = 1
    return e


def complete(n: int) -> np.ndarray:
    """K_n: |Aut| = n!."""
    return 1 - np.eye(n, dtype=np.int64)


def petersen() -> np.ndarray:
    """The Petersen graph: |Aut| = 120 (S_5)."""
    e = np.zeros((10, 10), dtype=np.int64)
    for i in range(5):
        for a, b in ((i, (i + 1) % 5), (i, i + 5), (5 + i, 5 + (i + 2) % 5)):
            e[a, b] = e[b, a] = 1
    return e


def paley(q: int) -> np.ndarray:
    """The Paley graph on q = 9 or a prime q ≡ 1 (mod 4): strongly regular,
    |Aut| = q(q−1)/2 · [F_q : F_p] (72 for q = 9, 78 for q = 13)."""
    if q == 9:  # F_9 = F_3[i], i² = −1
        els = [(a, b) for a in range(3) for b in range(3)]

        def mul(x, y):
            return ((x[0] * y[0] - x[1] * y[1]) % 3, (x[0] * y[1] + x[1] * y[0]) % 3)

        squares = {mul(x, x) for x in els if x != (0, 0)}
        diff = [[((x[0] - y[0]) % 3, (x[1] - y[1]) % 3) for y in els] for x in els]
        return np.array([[int(i != j and diff[i][j] in squares) for j in range(9)]
                         for i in range(9)], dtype=np.int64)
    squares = {(x * x) % q for x in range(1, q)}
    return np.array([[int(i != j and (i - j) % q in squares) for j in range(q)] for i in range(q)],
                    dtype=np.int64)


def random_graph(n: int, p: float, rng: np.random.Generator, colours: int = 1) -> np.ndarray:
    """An undirected G(n, p) graph with edge colours 1..colours."""
    e = (rng.random((n, n)) < p) * rng.integers(1, colours + 1, (n, n))
    e = np.triu(e, 1)
    return (e + e.T).astype(np.int64)


# name -> (adjacency, |Aut|)
SYMMETRIC = {
    "cycle12": (cycle(12), 24),
    "K6": (complete(6), 720),
    "petersen": (petersen(), 120),
    "paley9": (paley(9), 72),
    "paley13": (paley(13), 78),
}
