"""Cost of the GroupAveraging wrapper beyond the forward passes it must make.

Side by side in one run: the wrapped model's forward time ÷ the base model's forward
time on the input already repeated |G| (or K) times. Cases: D4 on 8×3×64×64 images
with a small CNN; SO(3) with 16 samples on 8 point clouds of 64 points with a small
transformer. Last line: ``ga_overhead=<worst ratio>`` (target ≤ 1.10).
"""

from __future__ import annotations

import argparse
import statistics
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
    ratio = statistics.median(w / b for w, b in zip(wrap_times, base_times))
    tb, tw = statistics.median(base_times), statistics.median(wrap_times)
    print(f"{name:<34} base {tb * 1e3:8.2f} ms   wrapped {tw * 1e3:8.2f} ms   median ratio {ratio:.3f}")
    return ratio


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    ratios = []

    images = torch.randn(8, 3, 64, 64)
    cnn = SmallCNN().eval()
    d4 = st.Symmetry("D4", st.actions.Image(), st.actions.Trivial())
    ratios.append(compare("D4 GroupAveraging, 8x3x64x64, CNN", cnn, st.GroupAveraging(cnn, d4).eval(),
                          images, images.repeat_interleave(8, 0), args.repeats))

    clouds = torch.randn(8, 64, 3)
    tf = SmallTransformer().eval()
    so3 = st.Symmetry("SO3", st.actions.Points(), st.actions.Points())
    ratios.append(compare("SO3 GroupAveraging K=16, 8x64x3", tf, st.GroupAveraging(tf, so3, samples=16).eval(),
                          clouds, clouds.repeat_interleave(16, 0), args.repeats))
    print(f"ga_overhead={max(ratios):.3f}")


if __name__ == "__main__":
    main()
