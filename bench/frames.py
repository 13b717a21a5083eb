"""Frames side by side: backbone calls per input, forward time ÷ base forward, and the
relative equivariance error (float32), on generic and degenerate inputs.

Methods (rows): PCA frame averaging (Puny et al.: 2^d sign flips), minimal frame
averaging and minimal canonicalization (Lin et al. 2024: one QR frame element), PCA
canonicalization (third-moment signs), weighted frame averaging (continuous weights over
4 windows of rows: 4 calls), and lucidrains' ``frame-averaging-pytorch``
(``FrameAverage``, 2^d PCA frames; install the ``bench`` extra, else its rows are
skipped with a message) on the same backbone and inputs.

Cases (a list, :data:`CASES`: add one to extend the table): E(3) point clouds, B = 64
clouds of N = 32 points, with a per-point MLP (the setting of issue 20's comparison with
lucidrains; a small backbone, so the wrappers' fixed costs show) and with the 2-layer
transformer of ``bench/overhead.py``, inputs generic (Gaussian) or degenerate
(tetrahedron, cube, square, collinear points, repeated points: each randomly rotated and
moved); S_n × E(3) n-body
inputs (positions, velocities, charges of 5 particles, a transformer without positional
encoding) with the frames the library picks for that product; S_n on dense graphs of 13
nodes (generic, and a 13-cycle, the Paley graph, the Petersen graph with 3 isolated
nodes); C4 and D4 on 64 images 3×16×16 with a small CNN, the grid orbit canonicalizer
(one call on generic images) against group averaging (|G| calls), generic and symmetric.

Time: median over interleaved repeats of (wrapped forward ÷ base forward on the same
un-repeated batch), one thread; ``--clock thread`` times with this thread's CPU time
(``time.thread_time``) instead of wall time, which other jobs on a loaded machine disturb
less. Error: ``symtrain.equivariance_error`` with 4 random
group elements per input, max over inputs. ``calls``: inputs the backbone sees per input.

Last lines: ``pca_fa_vs_lucidrains=<our PCA FA time ÷ theirs, generic E(3); goal ≤ 1.0>``,
``grid_canonicalization_cost=<worst time ÷ base forward of the image canonicalizers on
generic images>``,
``minimal_frame_cost=<worst time ÷ base forward of the minimal rows on generic inputs;
goal ≤ 1.2; images excluded>`` and ``minimal_frame_error=<worst relative error of the
minimal rows over all inputs, degenerate included (images too); goal ≤ 1e-5>``.

Measured (``--clock thread --repeats 21``, a 2-core machine shared at load 5–6; time ÷
base forward on generic inputs, calls per generic input):

=====================================  ==========  ===================  ======  =======
case (base forward)                    minimal FA  minimal canonical.   PCA FA  peer/GA
=====================================  ==========  ===================  ======  =======
E(3) point MLP (2.5 ms)                2.10        2.14                 8.4     8.6 (lucidrains)
E(3) transformer (18 ms)               1.17        1.15                 8.1     8.1 (lucidrains)
S_n × E(3) n-body transformer (1.8 ms) 4.18        4.34                 7.8
S_n graphs, dense MLP (0.24 ms)        11.1                             10.0
C4 images, CNN (7.6 ms)                            1.47                         4.11 (GA, 4 calls)
D4 images, CNN (7.8–11 ms)                         1.61                         7.89 (GA, 8 calls)
=====================================  ==========  ===================  ======  =======

``pca_fa_vs_lucidrains=1.027``, ``grid_canonicalization_cost=1.605``,
``minimal_frame_cost=11.084`` (graphs), ``minimal_frame_error=7.08e-06`` (the Petersen
graph + 3 isolated nodes, 720 elements in float32). On a quiet machine (load 0, base
forwards 2–5× faster, so fixed costs weigh more): ``pca_fa_vs_lucidrains=1.071`` (point
MLP; transformer 1.026), ``grid_canonicalization_cost=2.047``,
``minimal_frame_cost=11.338``, ``minimal_frame_error=5.35e-06``. See docs/frames.md for the errors
on every degenerate family and where the fixed cost goes.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from overhead import SmallTransformer  # the point transformer of bench/overhead.py
from torch import nn

import symtrain as st
from symtrain.actions import Adjacency, Fields, Image, Nodes, Points, Vectors
from symtrain.groups.orthogonal import haar_orthogonal


class PointMLP(nn.Module):
    """Per-point MLP with a mean-pooled context: ``[B, N, 3] -> [B, N, 3]`` (not equivariant)."""

    def __init__(self, d=3, hidden=64):
        super().__init__()
        self.inp = nn.Linear(d, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, x):
        h = self.inp(x)
        return self.out(torch.cat([h, h.mean(1, keepdim=True).expand_as(h)], -1))


class NBodyTransformer(nn.Module):
    """``(pos, vel, charge) -> (pos, vel)``, permutation equivariant (no positional code)."""

    def __init__(self, d=32):
        super().__init__()
        self.embed = nn.Linear(7, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(d, 6)

    def forward(self, pos, vel, charge):
        out = self.head(self.encoder(self.embed(torch.cat([pos, vel, charge], -1))))
        return pos + out[..., :3], out[..., 3:]


class Counting(nn.Module):
    """The backbone, counting the inputs it sees."""

    def __init__(self, base):
        super().__init__()
        self.base, self.rows = base, 0

    def forward(self, *x):
        self.rows += x[0].shape[0]
        return self.base(*x)


def moved(shape: torch.Tensor, b: int, n: int, g: torch.Generator) -> torch.Tensor:
    """``b`` copies of ``shape`` (its rows cycled to ``n``), each rotated and moved at random."""
    rows = shape[torch.arange(n) % shape.shape[0]]
    rot = haar_orthogonal(b, 3, generator=g)
    return rows @ rot.transpose(-1, -2) + torch.randn(b, 1, 3, generator=g)


def point_clouds(b: int = 64, n: int = 32) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    cube = torch.tensor([[i, j, k] for i in (-1.0, 1.0) for j in (-1.0, 1.0) for k in (-1.0, 1.0)])
    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    square = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]])
    line = torch.linspace(-1, 1, n)[:, None] * torch.tensor([[1.0, 0, 0]])
    repeated = torch.randn(3, 3, generator=g)
    return {"generic": torch.randn(b, n, 3, generator=g), "tetrahedron": moved(tetra, b, n, g),
            "cube": moved(cube, b, n, g), "square": moved(square, b, n, g),
            "collinear": moved(line, b, n, g), "repeated": moved(repeated, b, n, g)}


def nbody_inputs(b: int = 64, n: int = 5) -> dict[str, Any]:
    """Generic n-body inputs, and degenerate ones (at rest, equal charges): a regular
    pentagon (D5 × the plane's reflection), a square pyramid (C4v), repeated particles."""
    g = torch.Generator().manual_seed(1)
    charge = torch.randint(0, 2, (b, n, 1), generator=g).float() * 2 - 1
    out = {"generic": (torch.randn(b, n, 3, generator=g), torch.randn(b, n, 3, generator=g), charge)}
    if n == 5:
        angle = torch.arange(5) * (2 * math.pi / 5)
        pentagon = torch.stack([angle.cos(), angle.sin(), torch.zeros(5)], 1)
        # apex height 1.3: at 1.5 the apex's and the opposite vertex's residuals after the
        # first QR column stand exactly at the QR frame's pivot ratio (0.5), a tie that
        # float32 rounding breaks differently after a rotation (the pivot rule's
        # discontinuity, see symtrain.symmetrize.qr_frame)
        pyramid = torch.tensor([[1.0, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0], [0, 0, 1.3]])
        repeated = torch.randn(2, 3, generator=g)[torch.tensor([0, 0, 1, 1, 1])]
        for name, shape in (("pentagon", pentagon), ("pyramid", pyramid), ("repeated", repeated)):
            pos = moved(shape, b, n, g)
            out[name] = (pos, torch.zeros_like(pos), torch.ones(b, n, 1))
    return out


class DenseGraphModel(nn.Module):
    """``(node features [B, N, F], adjacency [B, N, N]) -> [B, N, 2]``, reading every node
    slot by position (not permutation equivariant)."""

    def __init__(self, n=13, f=2, hidden=64):
        super().__init__()
        self.n = n
        self.net = nn.Sequential(nn.Linear(n * f + n * n, hidden), nn.ReLU(), nn.Linear(hidden, 2 * n))

    def forward(self, x, a):
        return self.net(torch.cat([x.flatten(1), a.flatten(1)], 1)).reshape(-1, self.n, 2)


def graph_inputs(b: int = 64, n: int = 13) -> dict[str, Any]:
    """Graphs on 13 nodes, each randomly relabelled: generic (G(13, 0.4) with random node
    features: no automorphism but the identity) and symmetric ones with constant features:
    the 13-cycle (|Aut| = 26), the Paley graph on 13 vertices (strongly regular, 78), the
    Petersen graph with 3 isolated nodes (120 · 3! = 720)."""
    g = torch.Generator().manual_seed(2)

    def relabel(a):
        p = torch.stack([torch.randperm(n, generator=g) for _ in range(a.shape[0])])
        return a.gather(1, p[:, :, None].expand(-1, n, n)).gather(2, p[:, None, :].expand(-1, n, n))

    rand = (torch.rand(b, n, n, generator=g) < 0.4).float().triu(1)
    out = {"generic": (torch.randn(b, n, 2, generator=g), rand + rand.transpose(1, 2))}
    ring = torch.zeros(n, n)
    idx = torch.arange(n)
    ring[idx, (idx + 1) % n] = ring[(idx + 1) % n, idx] = 1
    squares = {(i * i) % n for i in range(1, n)}
    paley = torch.tensor([[float(i != j and (i - j) % n in squares) for j in range(n)] for i in range(n)])
    petersen = torch.zeros(n, n)
    for i in range(5):
        for u, v in ((i, (i + 1) % 5), (i, i + 5), (5 + i, 5 + (i + 2) % 5)):
            petersen[u, v] = petersen[v, u] = 1
    for name, a in (("cycle13", ring), ("paley13", paley), ("petersen+3", petersen)):
        out[name] = (torch.ones(b, n, 2), relabel(a.expand(b, n, n).clone()))
    return out


class ImageCNN(nn.Module):
    """Three 3×3 convolutions, ``[B, 3, H, W] -> [B, 3, H, W]`` (not rotation equivariant:
    its filters are not symmetric)."""

    def __init__(self, c=3, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(c, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(hidden, c, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def images(group: str, b: int = 64, size: int = 16) -> dict[str, Any]:
    """Generic images (Gaussian pixels) and images fixed by the group's rotations
    (C4: the sum of an image's 4 turns) or by a mirror (D4: an image plus its flip)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(b, 3, size, size, generator=g)
    y = torch.randn(b, 3, size, size, generator=g)
    symmetric = y + y.flip(-1) if group == "D4" else sum(torch.rot90(y, q, (-2, -1)) for q in range(4))
    return {"generic": x, "symmetric": symmetric}


@dataclass
class Case:
    """One table block: a symmetry, a backbone, inputs by family, the methods to run."""

    name: str
    symmetry: st.Symmetry
    backbone: Callable[[], nn.Module]
    inputs: Callable[[], dict[str, Any]]
    methods: list[tuple[str, Callable[[nn.Module, st.Symmetry], nn.Module]]]
    minimal: tuple[str, ...]  # the methods whose rows give the two last lines
    lucidrains: bool = False
    grid: bool = False  # images: its minimal rows give grid_canonicalization_cost, not minimal_frame_cost


def lucidrains(base, sym):
    from frame_averaging_pytorch import FrameAverage

    return FrameAverage(base, dim=3)


METHODS = {
    "PCA FA": lambda base, sym: st.FrameAveraging(base, sym, frames="pca"),
    "minimal FA": lambda base, sym: st.FrameAveraging(base, sym, frames="minimal"),
    "minimal canonicalization": lambda base, sym: st.Canonicalization(base, sym, canonicalizer="minimal"),
    "PCA canonicalization": lambda base, sym: st.Canonicalization(base, sym, canonicalizer="pca"),
    "weighted FA (4 windows)": lambda base, sym: st.FrameAveraging(base, sym, frames="weighted"),
}

CASES = [
    Case("E(3) clouds 64x32, point MLP", st.Symmetry("E3", Points(), Vectors()), PointMLP, point_clouds,
         list(METHODS.items()), ("minimal FA", "minimal canonicalization"), lucidrains=True),
    Case("E(3) clouds 64x32, transformer", st.Symmetry("E3", Points(), Vectors()), SmallTransformer,
         point_clouds, list(METHODS.items()), ("minimal FA", "minimal canonicalization"), lucidrains=True),
    # S_n x E(3): PCA FA (sort frame x 8 sign flips) against the sequential minimal frame
    # (S_n frame of the rounded Gram graph, then the QR frame in that order).
    Case("S_n x E(3) n-body 64x5, transformer",
         st.Symmetry("S_n x E3", Fields(Points(), Vectors(), Nodes()), Fields(Points(), Vectors())),
         NBodyTransformer, nbody_inputs,
         [(k, METHODS[k]) for k in ("PCA FA", "minimal FA", "minimal canonicalization")],
         ("minimal FA", "minimal canonicalization")),
    # S_n on dense graphs: sort frames (ties enumerated up to 720, refused beyond) against
    # minimal frames (canonical labelling + automorphisms; sampled beyond 1024).
    Case("S_n graphs 64x13, dense MLP", st.Symmetry("S_n", Fields(Nodes(), Adjacency()), Nodes()),
         DenseGraphModel, graph_inputs, [(k, METHODS[k]) for k in ("PCA FA", "minimal FA")],
         ("minimal FA",)),
    # C4 / D4 on images: the grid orbit canonicalizer (one call on generic images, the
    # stabiliser on symmetric ones) against group averaging (|G| calls).
    *(Case(f"{g} images 64x3x16x16, CNN", st.Symmetry(g, Image(), Image()), ImageCNN,
           lambda g=g: images(g), [("minimal canonicalization", METHODS["minimal canonicalization"]),
                                   ("group averaging", lambda base, sym: st.GroupAveraging(base, sym))],
           ("minimal canonicalization",), grid=True) for g in ("C4", "D4")),
]

#: ``--clock``: wall time, or the CPU time of this thread (``time.thread_time``), which a
#: loaded machine disturbs less (other processes' time is not counted; with one torch
#: thread all the work runs on this one).
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
CLOCK = time.perf_counter


def timed(fn) -> float:
    t0 = CLOCK()
    fn()
    return CLOCK() - t0


def call(model, x):
    return model(*x) if isinstance(x, tuple) else model(x)


@torch.no_grad()
def time_ratio(model, base, x, repeats: int, base_times: list | None = None) -> float:
    """Median of interleaved paired ratios (model ÷ base), robust to a shared machine
    (``base_times``: the base's times are appended to it)."""
    base_times = [] if base_times is None else base_times
    for _ in range(3):
        call(base, x), call(model, x)
    ratios = []
    for i in range(repeats):  # the order alternates, so load drifts hit both alike
        if i % 2:
            b, a = timed(lambda: call(base, x)), timed(lambda: call(model, x))
        else:
            a, b = timed(lambda: call(model, x)), timed(lambda: call(base, x))
        ratios.append(a / b)
        base_times.append(b)
    return statistics.median(ratios)


def measure(case: Case, method: str, make, family: str, x, repeats: int) -> dict:
    torch.manual_seed(0)
    base = case.backbone().eval()
    counting = Counting(base)
    row = {"case": case.name, "method": method, "input": family}
    try:
        model = make(counting, case.symmetry).eval()
        with torch.no_grad():
            call(model, x)
        b = case.symmetry.context(x).batch_size
        row["calls"] = counting.rows / b
        row["error"] = st.equivariance_error(model, case.symmetry, x, samples=4).max
        times: list[float] = []
        row["time"] = time_ratio(make(base, case.symmetry).eval(), base, x, repeats, times) \
            if family == "generic" else math.nan
        row["base_ms"] = statistics.median(times) * 1e3 if times else math.nan
    except st.SymmetryError as err:
        row["failed"] = f"{type(err).__name__}"
    return row


def fmt(row) -> str:
    head = f"{row['case'][:34]:<34} {row['method']:<26} {row['input']:<12}"
    if "failed" in row:
        return f"{head} {'fails: ' + row['failed']:>49}"
    t = "" if math.isnan(row["time"]) else f"{row['time']:.3f}"
    ms = "" if math.isnan(row["base_ms"]) else f"{row['base_ms']:.2f}"
    return f"{head} {row['calls']:>6.1f} {ms:>8} {t:>9} {row['error']:>12.2e}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or this thread's CPU time (steadier on a loaded machine; "
                             "needs --threads 1, where all the work runs on this thread)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be positive")
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread counts this thread only: use it with --threads 1")
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(f"clock: {args.clock}, threads: {args.threads}, repeats: {args.repeats}")
    try:
        import frame_averaging_pytorch  # noqa: F401
        have_lucidrains = True
    except ImportError:
        have_lucidrains = False
        print("frame-averaging-pytorch is not installed (pip install 'symtrain[bench]'): "
              "its rows are skipped")
    print(f"{'case':<34} {'method':<26} {'input':<12} {'calls':>6} {'base ms':>8} {'time/base':>9} {'rel. error':>12}")
    rows = []
    for case in CASES:
        methods = list(case.methods)
        if case.lucidrains and have_lucidrains:
            methods.append(("lucidrains FA", lucidrains))
        for family, x in case.inputs().items():
            for method, make in methods:
                row = measure(case, method, make, family, x, args.repeats)
                rows.append(row)
                print(fmt(row), flush=True)
    versus = []
    for peer in [c for c in CASES if c.lucidrains and have_lucidrains]:  # equal frames, paired directly
        torch.manual_seed(0)
        base = peer.backbone().eval()
        x = peer.inputs()["generic"]
        ours, theirs = METHODS["PCA FA"](base, peer.symmetry).eval(), lucidrains(base, peer.symmetry).eval()
        with torch.no_grad():
            gap = (call(ours, x) - call(theirs, x)).abs().max().item()
        ratio = time_ratio(ours, theirs, x, args.repeats)
        print(f"{peer.name}: PCA FA ÷ lucidrains FA (same 8 frames, outputs equal to {gap:.0e}): {ratio:.3f}")
        versus.append(ratio)
    if versus:
        print(f"pca_fa_vs_lucidrains={max(versus):.3f}")
    minimal = [r for r in rows if any(r["case"] == c.name and r["method"] in c.minimal for c in CASES)]
    grids = {c.name for c in CASES if c.grid}
    failed = [r for r in minimal if "failed" in r]
    generic = [r for r in minimal if "failed" not in r and r["input"] == "generic"]
    cost = max(r["time"] for r in generic if r["case"] not in grids)
    error = math.inf if failed else max(r["error"] for r in minimal)
    grid = [r["time"] for r in generic if r["case"] in grids]
    if grid:
        print(f"grid_canonicalization_cost={max(grid):.3f}")
    print(f"minimal_frame_cost={cost:.3f}")
    print(f"minimal_frame_error={error:.2e}")


if __name__ == "__main__":
    main()
