#!/usr/bin/env bash
# The second device call of the session of 2026-12-07, late night: issue 25's other bar, every target's
# built-ins in `harness run --device cuda --quick` (90 s; 211 s when the issue was filed), with the compile
# caches warm (a user's second run) and the per-size timing trace; per-candidate stage splits into
# $OUT/runs.txt.  BUDGET_S (480) bounds the whole call.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m harness verify --device cuda --examples 3 > "$OUT/warm.log" 2>&1
echo "the built-ins' compile caches warm ($(left) s left)" | tee -a "$OUT/runs.txt"
TRACE=1 timed_run "built-ins"
python3 benchmarks/stage_split.py "$OUT"/built-ins/*.json 2>&1 | tee -a "$OUT/runs.txt"
grep TOTAL "$OUT/built-ins.trace" | tee -a "$OUT/runs.txt"
if [ "$(left)" -gt 200 ]; then  # the same run again: how much a second, fully warm run varies
  TRACE=1 timed_run "built-ins-again"
fi
echo "($(left) s left)"
