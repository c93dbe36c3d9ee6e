"""The baseline's median at each size beside each candidate of one or more saved runs: the same function on
the same inputs, so the figures should agree (``noise.baseline_disagreements`` flags them when they are
more than 1.5x apart beyond their standard errors).  Shows where a disagreement came from:

    python benchmarks/baseline_beside.py reports/quantize_k_cache-cuda.json [more.json ...]

Each row: size, candidate, the baseline's median ± its standard error, rounds, the foreign CPU share while
that size was timed, and the candidate's median.
"""

from __future__ import annotations

import sys

import harness  # noqa: F401
from harness.core import schema
from harness.core.fmt import fmt_time


def main(paths: list[str]) -> int:
    for path in paths:
        run = schema.load(path)
        print(f"{path}: {run.target} on {run.environment.device_name or run.environment.device}, "
              f"noise: {'; '.join(n.text for n in run.noise) or 'none flagged'}")
        sizes = dict.fromkeys(t.size for c in run.candidates for t in c.timings)
        for size in sizes:
            for c in run.candidates:
                for t in (t for t in c.timings if t.size == size):
                    foreign = "-" if t.foreign_cpu is None else f"{t.foreign_cpu:.0%}"
                    print(f"  {size:22s} {c.name:24s} baseline {fmt_time(t.baseline.median_s):>9s} "
                          f"± {fmt_time(t.baseline.stderr_s):>8s} ({t.baseline.rounds} rounds, foreign CPU {foreign:>4s})"
                          f"   candidate {fmt_time(t.candidate.median_s):>9s}  {t.shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]) if sys.argv[1:] else (print(__doc__), 2)[1])
