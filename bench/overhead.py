"""Cost of the GroupAveraging wrapper beyond the forward passes it must make.

Side by side in one run: the wrapped model's forward time ÷ the base model's forward
time on the input already repeated |G| (or K) times. Cases: D4 on 8×3×64×64 images
with a small CNN; SO(3) with 16 samples on 8 point clouds of 64 points with a small
transformer. Each figure is the median over 3 whole runs of the median of interleaved
paired ratios; the spread over the runs is printed beside it.

Then peak memory of SO(3) averaging with K=256 samples, without and with
``chunk_size=32`` (each in its own process: the growth of the peak resident set over
the forward pass).

Then where the overhead goes: the wrapper's own cost, measured with an identity backbone
(every copy made, moved and averaged, no network), alone in a loop (warm caches) and right
after one call of the real backbone (the caches hold the backbone's weights and
activations, as they do inside the wrapped forward). On a 2-core CPU the second is 2–4×
the first: the wrapper's ~280 Python calls and ~30 small tensor ops run on cold caches,
which is most of what separates the ratio from 1.

Last lines: ``ga_peak_memory_mb=<unchunked>/<chunked>`` and ``ga_overhead=<worst ratio>``
(target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import symtrain as st


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class SmallTransformer(nn.Module):
    def __init__(self, d=64):
        super().__init__()
        self.embed = nn.Linear(3, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@torch.no_grad()
def compare(name, base, wrapped, x, x_rep, repeats):
    for _ in range(3):  # warm-up
        base(x_rep), wrapped(x)
    base_times, wrap_times = [], []
    for _ in range(repeats):  # interleaved pairs, so machine noise hits both alike
        base_times.append(timed(lambda: base(x_rep)))
        wrap_times.append(timed(lambda: wrapped(x)))
    # The median of paired ratios is robust to the bursts of a shared machine.
    ratio = statistics.median(w / b for w, b in zip(wrap_times, base_times, strict=True))
    tb, tw = statistics.median(base_times), statistics.median(wrap_times)
    print(f"{name:<34} base {tb * 1e3:8.2f} ms   wrapped {tw * 1e3:8.2f} ms   median ratio {ratio:.3f}")
    return ratio


class Identity(nn.Module):
    def forward(self, x):
        return x


@torch.no_grad()
def fixed_cost(name, base, wrapped_identity, x, x_rep, repeats):
    """Median ms of the identity-backbone wrapper: alone, and right after ``base(x_rep)``."""
    for _ in range(3):
        wrapped_identity(x)
    warm, cold = [], []
    for _ in range(repeats):
        warm.append(timed(lambda: wrapped_identity(x)))
    for _ in range(repeats):
        base(x_rep)
        cold.append(timed(lambda: wrapped_identity(x)))
    tw, tc = statistics.median(warm) * 1e3, statistics.median(cold) * 1e3
    print(f"{name:<34} wrapper alone (identity backbone) {tw:.2f} ms, right after a backbone call "
          f"{tc:.2f} ms")


def peak_memory(chunk_size: int | None) -> float:
    """MB by which the peak resident set grows over one K=256 forward (this process)."""
    torch.manual_seed(0)
    tf = SmallTransformer().eval()
    so3 = st.Symmetry("SO3", "points", "points")
    model = st.GroupAveraging(tf, so3, samples=256, chunk_size=chunk_size).eval()
    x = torch.randn(8, 64, 3)
    with torch.no_grad():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model(x)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory is not None:  # child process of the memory measurement
        print(json.dumps(peak_memory(None if args.memory == "none" else int(args.memory))))
        return
    torch.manual_seed(0)

    images = torch.randn(8, 3, 64, 64)
    cnn = SmallCNN().eval()
    d4 = st.Symmetry("D4", "image", "trivial")
    clouds = torch.randn(8, 64, 3)
    tf = SmallTransformer().eval()
    so3 = st.Symmetry("SO3", "points", "points")
    cases = [("D4 GroupAveraging, 8x3x64x64, CNN", cnn, st.GroupAveraging(cnn, d4).eval(),
              images, images.repeat_interleave(8, 0)),
             ("SO3 GroupAveraging K=16, 8x64x3", tf, st.GroupAveraging(tf, so3, samples=16).eval(),
              clouds, clouds.repeat_interleave(16, 0))]
    worst = []
    for name, base, wrapped, x, x_rep in cases:
        runs = [compare(name, base, wrapped, x, x_rep, args.repeats) for _ in range(args.runs)]
        mid = statistics.median(runs)
        print(f"{name:<34} median of {args.runs} runs {mid:.3f} (spread {min(runs):.3f}-{max(runs):.3f})")
        worst.append(mid)
    fixed_cost("SO3 K=16 fixed cost", tf, st.GroupAveraging(Identity(), so3, samples=16).eval(),
               clouds, clouds.repeat_interleave(16, 0), args.repeats)

    mem = {}
    for chunk in ("none", "32"):
        out = subprocess.run([sys.executable, __file__, "--memory", chunk], capture_output=True,
                             text=True, check=True)
        mem[chunk] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"SO3 GroupAveraging K=256, 8x64x3: peak memory growth {mem['none']:.0f} MB unchunked, "
          f"{mem['32']:.0f} MB with chunk_size=32")
    print(f"ga_peak_memory_mb={mem['none']:.0f}/{mem['32']:.0f}")
    print(f"ga_overhead={max(worst):.3f}")


if __name__ == "__main__":
    main()
