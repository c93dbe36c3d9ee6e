"""Where each candidate's judging time went, from saved results: `python benchmarks/stage_split.py RESULT.json...`
prints one line per candidate (load, verify, wait, ladder timing, regression cases, profile; seconds)."""

import sys

from harness.core import schema

for path in sys.argv[1:]:
    run = schema.load_text(open(path).read())
    print(f"{path}: {run.target} on {run.environment.device_name}")
    for c in run.candidates:
        s = c.stages
        print(f"  {c.name:28s} {c.verdict:8s} load {s.load_s:5.1f}"
              f"  verify {s.verify_s:5.1f}  wait {s.wait_s:5.1f}  ladder {s.time_s:5.1f}  cases {s.cases_s:5.1f}"
              f"  profile {s.profile_s:5.1f}  pairs/size {[len(t.pair_verdicts) or 1 for t in c.timings]}")
