"""The verdict against the noise floor, shown with figures:

    python benchmarks/noise_floor.py [--size 4096] [--repeats 5]

1. the slow loop timed against itself must be "no significant difference" every time, with a speedup
   within a few percent of 1.00;
2. a candidate made 10% slower on purpose (the slow loop plus a busy wait of a tenth of its median
   time) must be "slower" every time.
As in `harness bench`: the baseline and the candidate each in a runner process of its own
(candidates from benchmarks/_planted.py).  Exits 1 if either fails in any repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import harness  # noqa: F401
from harness.bench import Bench, BenchConfig
from harness.sandbox import spawn
from harness.target import get_target

PLANTED = Path(__file__).resolve().with_name("_planted.py")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="4096")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    target = get_target("quantize_k_cache")
    size = target.parse_size(args.size)
    call = target.build(size, "cpu")
    samples = []
    for _ in range(20):
        t0 = time.perf_counter()
        target.oracle(*call.args, **call.kwargs)
        samples.append(time.perf_counter() - t0)
    base_s = statistics.median(samples)
    os.environ["PLANTED_EXTRA_S"] = repr(0.10 * base_s)  # the runners inherit it
    config = BenchConfig(budget_s=3.0)
    bench = Bench(target, "cpu", config)
    ok = True
    for label, name, want in (("identical", "identical", "no significant difference"),
                              ("10% slower", "ten_percent_slower", "slower")):
        print(f"{label} vs slow loop at {size.name} (slow loop ~{base_s * 1e3:.2f} ms in this process):")
        for i in range(args.repeats):
            runners = [spawn(spec, target.ref, "cpu", dataclasses.asdict(config), 600)
                       for spec in ("oracle:quantize_k_cache", f"{PLANTED}:{name}")]
            try:
                t = bench.compare(*runners, size)
            finally:
                for runner in runners:
                    runner.close()
            good = t.verdict == want
            ok &= good
            print(f"  run {i + 1}: {t.speedup:.3f}x [{t.speedup_ci[0]:.3f}-{t.speedup_ci[1]:.3f}] "
                  f"{t.verdict} ({t.candidate.rounds} rounds) {'ok' if good else 'WRONG'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
