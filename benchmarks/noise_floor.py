"""The verdict against the noise floor, shown with figures, at every default CPU size of a target:

    python benchmarks/noise_floor.py [--target quantize_k_cache] [--sizes ...] [--repeats 10] [--budget 6]

At each size, ``--repeats`` times, each time with two fresh runner processes and, by ``harness``'s rule,
more pairs while the verdict is not settled (``Bench.another_pair``, ``Bench.pair_budget``; every pair here
is fresh, where ``harness`` keeps the baseline's runners from candidate to candidate):
1. the oracle timed against itself (A against A) must never be "faster" or "slower";
2. a candidate doing 10% more work on purpose (the oracle plus a busy wait of a tenth of the oracle's
   median at that size, as the A-against-A runs just measured it in runners) must be "slower" every time.
Prints each run's speedup, interval, label, rounds, wall time, and the share of the CPUs other processes
(and, on a virtual machine, its host: steal) took while it was timed ("-": under 0.5 s, too short to
say), then a summary per size, counting the runs ``harness`` would have flagged noisy.  Exits 1 if either
rule fails once, flagged or not.  Candidates from benchmarks/_planted.py.  Run it on a quiet machine.
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
from harness.judge import noise
from harness.core import stats
from harness.judge.bench import Bench, BenchConfig
from harness.core.result import SizeTiming
from harness.judge.sandbox import start
from harness.core.target import get_target

PLANTED = Path(__file__).resolve().with_name("_planted.py")
PAIRS = (("A vs A", "identical", lambda v: v not in (stats.FASTER, stats.SLOWER)),
         ("10% more work", "ten_percent_slower", lambda v: v == stats.SLOWER))


def _share(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.0%}':>4s}"


def judged(bench: Bench, specs: tuple[str, str], size) -> SizeTiming:
    """A size timed as ``harness`` times it: in a fresh pair of runners, then in more fresh pairs while
    ``Bench.another_pair`` says the verdict is not settled, the pairs voting (``Bench.combine``)."""
    timings = [fresh_pair(bench, specs, size)]
    while bench.another_pair(timings):
        timings.append(fresh_pair(bench, specs, size, bench.pair_budget(len(timings))))
    return bench.combine(timings)


def fresh_pair(bench: Bench, specs: tuple[str, str], size, budget_s: float | None = None) -> SizeTiming:
    """Baseline and candidate each in a freshly started runner, timed at ``size``, then both stopped."""
    runners = [start(spec, bench.target.ref, bench.device, dataclasses.asdict(bench.config), 600) for spec in specs]
    try:
        for runner in runners:
            runner.ready()
        return bench.compare(*runners, size, budget_s)
    finally:
        for runner in runners:
            runner.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="quantize_k_cache")
    ap.add_argument("--sizes", nargs="+", help="default: the target's default CPU sizes")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--budget", type=float, default=BenchConfig().budget_s)
    args = ap.parse_args()
    target = get_target(args.target)
    sizes = [target.parse_size(s) for s in args.sizes] if args.sizes else target.sizes("cpu", quick=False)
    config = BenchConfig(budget_s=args.budget)
    bench = Bench(target, "cpu", config)
    ok, summary = True, []
    os.environ["PLANTED_TARGET"] = target.name  # the runners inherit it
    for size in sizes:
        print(f"{size.name}:", flush=True)
        baseline_medians: list[float] = []
        for label, name, good in PAIRS:
            if name == "ten_percent_slower":  # a tenth of the oracle's median in a runner, as just measured
                extra = 0.10 * statistics.median(baseline_medians)
                os.environ["PLANTED_EXTRA_S"] = repr(extra)
                print(f"  (10% more work: {extra * 1e3:.3g} ms of busy wait per call)", flush=True)
            verdicts, walls, loaded = [], [], 0
            for i in range(args.repeats):
                t0 = time.perf_counter()
                t = judged(bench, (f"oracle:{target.name}", f"{PLANTED}:{name}"), size)
                walls.append(time.perf_counter() - t0)
                verdicts.append(t.verdict)
                loaded += noise.Watched(t.foreign_cpu, t.steal_cpu).loaded  # a run that says the machine was noisy
                baseline_medians.append(t.baseline.median_s)
                ok &= good(t.verdict)
                print(f"  {label:13s} run {i + 1:2d}: {t.speedup:.3f}x [{t.speedup_ci[0]:.3f}-{t.speedup_ci[1]:.3f}] "
                      f"{t.label:34s} {t.candidate.rounds:4d} rounds {walls[-1]:5.1f} s "
                      f"{'pairs ' + ' '.join(f'{s:.3f}' for s in t.pair_speedups) + ' ' if t.pair_speedups else ''}"
                      f"foreign CPU {_share(t.foreign_cpu)} steal {_share(t.steal_cpu)} "
                      f"{'ok' if good(t.verdict) else 'WRONG'}", flush=True)
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
            summary.append(f"{size.name:22s} {label:13s} {counts}; wall per run median {statistics.median(walls):.1f} s, "
                           f"max {max(walls):.1f} s; {loaded} flagged noisy")
    print("\nsummary (" + ("all as required" if ok else "SOME RUNS WRONG") + "):")
    print("\n".join(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
