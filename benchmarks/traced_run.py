"""`harness run` with the judge's timing traced: `python benchmarks/traced_run.py TRACE.txt RUN-ARGS...` runs
`harness run RUN-ARGS...` in this process and writes, per candidate and timed size or case, the wall seconds
of `Bench.compare` split into preparing (inputs, warm-up), rounds (both runners' calls, their placing and
the judge's checks) and the rest (physics, placing reference), with the rounds' count — where a candidate's
timing goes on this device (issue 25).  Only meaningful with one judge (the default --jobs on one GPU)."""

import sys
import time
from collections import defaultdict

from harness.cli.commands import main
from harness.judge import bench

spent: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
original = {name: getattr(bench.Bench, name) for name in ("compare", "_prepare", "_round")}


def traced(name):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original[name](*args, **kwargs)
        finally:
            key = traced.current
            spent[key][name] += time.perf_counter() - start
            spent[key][name + "#"] += 1
    return wrapper


def compare(self, baseline, candidate, size, budget_s=None):
    traced.current = (getattr(candidate, "spec", "?").rsplit(":", 1)[-1], size.name)
    return traced("compare")(self, baseline, candidate, size, budget_s)


traced.current = ("?", "?")
bench.Bench.compare = compare
bench.Bench._prepare = staticmethod(traced("_prepare"))
bench.Bench._round = traced("_round")
try:
    code = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        total = defaultdict(float)
        for (cand, size), s in sorted(spent.items()):
            rest = s["compare"] - s["_prepare"] - s["_round"]
            out.write(f"{cand:28s} {size:36s} compare {s['compare']:6.3f} s ({s['compare#']:.0f}x)  prepare "
                      f"{s['_prepare']:6.3f}  rounds {s['_round']:6.3f} ({s['_round#']:.0f})  rest {rest:6.3f}\n")
            for k in ("compare", "_prepare", "_round"):
                total[(cand, k)] += s[k]
        for cand in sorted({c for c, _ in total}):
            out.write(f"TOTAL {cand:28s} compare {total[(cand, 'compare')]:6.1f} prepare {total[(cand, '_prepare')]:6.1f}"
                      f" rounds {total[(cand, '_round')]:6.1f}\n")
sys.exit(code)
