"""Wall time of the Ray backend of ``symtrain sweep`` (the timing that used to be an
assertion of tests/test_sweep.py; the suite now checks only correctness).

Runs the 8-point synthetic smoke sweep (``synthetic_run``: method × params × seed) on a
fresh local Ray instance with ``--num-cpus`` CPUs, in a temporary folder, and prints the
time to start Ray and run the 8 points (target: under 60 s), then the same sweep on the
local backend for comparison. Ray's start (``ray.init``, worker processes importing
torch and symtrain) dominates on a small or loaded machine.

Last line: ``sweep_ray_seconds=<wall time of the Ray sweep, start included>``. Usage:
``python bench/sweep_ray.py [--num-cpus 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from symtrain.scaling import sweep as sw

SPEC = {"grid": {"method": ["plain", "augment"], "params": [1e3, 1e4], "seed": [0, 1]}}
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    if args.num_cpus < 1:
        parser.error(f"--num-cpus must be at least 1, got {args.num_cpus}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcome = sw.run_sweep(SPEC, sw.synthetic_run, Path(tmp) / "ray", backend="ray", num_cpus=args.num_cpus)
        ray_s = time.perf_counter() - start
        if outcome.failed or len(outcome.ran) != 8:
            raise SystemExit(f"the Ray sweep did not run its 8 points: {outcome}")
        start = time.perf_counter()
        sw.run_sweep(SPEC, sw.synthetic_run, Path(tmp) / "local")
        local_s = time.perf_counter() - start
    verdict = "within" if ray_s < TARGET_S else "OVER"
    print(f"8-point synthetic sweep: Ray ({args.num_cpus} CPUs, start included) {ray_s:.1f} s, "
          f"local {local_s:.2f} s; {verdict} the {TARGET_S:.0f} s target")
    print(f"sweep_ray_seconds={ray_s:.1f}")


if __name__ == "__main__":
    main()
