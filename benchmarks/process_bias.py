"""How much two processes running the same function differ: the oracle against itself in N fresh runner
pairs, a fixed 2 s of rounds each (no early stop), printing each pair's speedup and the spread.

    PYTHONPATH=. python benchmarks/process_bias.py [--size 16384] [--pairs 12] [--swap]

Each pair's interval says how well that pair was measured; the spread across pairs is what a single pair
cannot see (benchmarks/NOTES.md, "Timing that decides").  ``--swap`` puts the planted copy in the baseline's
place and the oracle in the candidate's, to tell a property of the function from one of the position.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import harness  # noqa: F401
from harness.bench import Bench, BenchConfig
from harness.target import get_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_floor import PLANTED, fresh_pair  # noqa: E402  (one way to time a fresh pair of runners)

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="16384")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--swap", action="store_true")
    args = ap.parse_args()
    target = get_target("quantize_k_cache")
    size = target.parse_size(args.size)
    config = BenchConfig(budget_s=2.0, min_rounds=10**6, target_rse=0.0)  # rounds until the budget, always
    bench = Bench(target, "cpu", config)
    specs = ["oracle:quantize_k_cache", f"{PLANTED}:identical"]
    if args.swap:
        specs.reverse()
    speedups = []
    for _ in range(args.pairs):
        t = fresh_pair(bench, tuple(specs), size)
        speedups.append(t.speedup)
        print(f"{t.speedup:.3f}x [{t.speedup_ci[0]:.3f}-{t.speedup_ci[1]:.3f}] {t.candidate.rounds} rounds, "
              f"baseline {t.baseline.median_s * 1e3:.2f} ms, candidate {t.candidate.median_s * 1e3:.2f} ms", flush=True)
    print(f"{size.name}: pair speedups SD {statistics.pstdev(speedups):.3f}, "
          f"range {min(speedups):.3f}-{max(speedups):.3f} over {len(speedups)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
