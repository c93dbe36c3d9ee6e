"""How much two processes running the same function differ: the oracle against itself in N fresh runner
pairs, a fixed 2 s of rounds each (no early stop), printing each pair's speedup and the spread.

    PYTHONPATH=. python benchmarks/process_bias.py [--size 16384] [--pairs 12] [--swap] [--device cuda]
                                                   [--keep-baseline] [--prepare-first SIZE ...]

Each pair's interval says how well that pair was measured; the spread across pairs is what a single pair
cannot see (benchmarks/NOTES.md, "Timing that decides").  ``--swap`` puts the planted copy in the baseline's
place and the oracle in the candidate's, to tell a property of the function from one of the position.
``--keep-baseline`` keeps one baseline runner for every pair, as ``harness run`` does (a fresh candidate
runner each time); ``--prepare-first`` has the baseline prepare other sizes before the first pair, as in a
run that times several sizes.  Each line also names the CPU each runner last ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import harness  # noqa: F401
from harness.judge.bench import Bench, BenchConfig
from harness.core.target import get_target

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_floor import PLANTED, fresh_pair  # noqa: E402  (one way to time a fresh pair of runners)

import dataclasses  # noqa: E402

from harness.judge import noise  # noqa: E402
from harness.judge.sandbox import start  # noqa: E402


def _cpu(runner) -> str:
    fields = noise.stat_fields(runner.pid)
    return fields[36] if fields and len(fields) > 36 else "?"  # field 39 of /proc/PID/stat: last CPU


def kept_pair(bench: Bench, baseline, spec: str, size) -> tuple:
    """The kept ``baseline`` runner against a fresh runner of ``spec``; the timing and both runners' CPUs."""
    runner = start(spec, bench.target.ref, bench.device, dataclasses.asdict(bench.config), 600)
    try:
        runner.ready()
        timing = bench.compare(baseline, runner, size)
        return timing, (_cpu(baseline), _cpu(runner))
    finally:
        runner.close()

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="16384")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--swap", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--keep-baseline", action="store_true")
    ap.add_argument("--prepare-first", nargs="*", default=[])
    args = ap.parse_args()
    target = get_target("quantize_k_cache")
    size = target.parse_size(args.size)
    config = BenchConfig(budget_s=2.0, min_rounds=10**6, target_rse=0.0)  # rounds until the budget, always
    bench = Bench(target, args.device, config)
    specs = ["oracle:quantize_k_cache", f"{PLANTED}:identical"]
    if args.swap:
        specs.reverse()
    kept = None
    if args.keep_baseline:
        kept = start(specs[0], target.ref, args.device, dataclasses.asdict(config), 600).ready()
        for other in args.prepare_first:
            kept.prepare(target.parse_size(other))
            kept.release()
    speedups = []
    try:
        for _ in range(args.pairs):
            if kept is not None:
                t, cpus = kept_pair(bench, kept, specs[1], size)
            else:
                t, cpus = fresh_pair(bench, tuple(specs), size), ("?", "?")
            speedups.append(t.speedup)
            print(f"{t.speedup:.3f}x [{t.speedup_ci[0]:.3f}-{t.speedup_ci[1]:.3f}] {t.candidate.rounds} rounds, "
                  f"baseline {t.baseline.median_s * 1e3:.3f} ms, candidate {t.candidate.median_s * 1e3:.3f} ms, "
                  f"CPUs {cpus[0]}/{cpus[1]}", flush=True)
    finally:
        if kept is not None:
            kept.close()
    print(f"{size.name}: pair speedups SD {statistics.pstdev(speedups):.3f}, "
          f"range {min(speedups):.3f}-{max(speedups):.3f} over {len(speedups)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
