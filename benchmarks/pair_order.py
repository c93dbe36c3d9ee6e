"""Whether a pair's position in the order of timing biases it: ``harness bench`` of the oracle's own
code (``candidates/slow_loop.py``, A against A) with ``--processes N``, several times, printing each size's
pair speedups in the order they were timed, then the mean speedup of each position.

    PYTHONPATH=. python benchmarks/pair_order.py [--device cuda] [--processes 3] [--repeats 3] [--sizes ...]

An A-against-A pair should read 1.00 whatever its position; a position that reads off in every repeat is
a property of the order (which runners exist, which were started when), not of the function.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import harness  # noqa: F401
from harness.core import schema
from harness.cli.commands import main as harness_main


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target", default="quantize_k_cache")
    ap.add_argument("--candidate", default="candidates/slow_loop.py:slow_loop")
    ap.add_argument("--sizes", nargs="+", default=["8x16x512,dtype=bfloat16", "4096"])
    args = ap.parse_args()
    by_position: dict[int, list[float]] = {}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.json"
            harness_main(["bench", "--device", args.device, "--target", args.target, "--candidate", args.candidate,
                          "--processes", str(args.processes), "--sizes", *args.sizes, "--json", str(path)])
            run = schema.load(path)
        for t in run.candidates[0].timings:
            print(f"repeat {repeat + 1} {t.size:24s} pairs " + " ".join(f"{s:.3f}" for s in t.pair_speedups)
                  + "  " + ", ".join(t.pair_verdicts), flush=True)
            for i, s in enumerate(t.pair_speedups):
                by_position.setdefault(i + 1, []).append(s)
    for position, speedups in sorted(by_position.items()):
        print(f"pair {position}: mean {statistics.mean(speedups):.3f}, range {min(speedups):.3f}-{max(speedups):.3f} "
              f"over {len(speedups)} sizes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
