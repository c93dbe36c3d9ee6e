"""The verdict against the noise floor, shown with figures:

    python benchmarks/noise_floor.py [--size 4096] [--repeats 5]

1. a candidate timed against an identical copy of itself (same code, another function object) must be
   "no significant difference" every time, with a speedup within a few percent of 1.00;
2. a candidate made 10% slower on purpose (the slow loop plus a busy wait of a tenth of its median
   time) must be "slower" every time.
Exits 1 if either fails in any repeat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import harness  # noqa: F401
from harness.bench import Bench, BenchConfig
from harness.target import get_target


def copy_of(fn):
    """The same code as a distinct function object."""
    return types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_copy", fn.__defaults__, fn.__closure__)


def slowed(fn, extra_s: float):
    def slower(*args, **kwargs):
        out = fn(*args, **kwargs)
        end = time.perf_counter() + extra_s
        while time.perf_counter() < end:
            pass
        return out

    return slower


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
    bench = Bench(target, "cpu", BenchConfig(budget_s=3.0))
    ok = True
    for label, candidate, want in (("identical copy", copy_of(target.oracle), "no significant difference"),
                                   ("10% slower", slowed(target.oracle, 0.10 * base_s), "slower")):
        print(f"{label} vs slow loop at {size.name} (slow loop ~{base_s * 1e3:.2f} ms):")
        for i in range(args.repeats):
            t = bench.compare(target.oracle, candidate, size)
            good = t.verdict == want
            ok &= good
            print(f"  run {i + 1}: {t.speedup:.3f}x [{t.speedup_ci[0]:.3f}-{t.speedup_ci[1]:.3f}] "
                  f"{t.verdict} ({t.candidate.rounds} rounds) {'ok' if good else 'WRONG'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
