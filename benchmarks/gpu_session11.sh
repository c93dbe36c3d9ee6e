#!/usr/bin/env bash
# The first device call of the session of 2026-12-07, night: the runners' read-only view, the placing checks
# and the checked per-case timing on CUDA for the first time, and issue 25's bars; each step only while
# BUDGET_S (560) lasts; per-candidate stage splits (`stage_split.py`) into $OUT/runs.txt:
#   1. the compile caches warmed (a short verify of a fused wrapper and of every built-in);
#   2. N (24) thin wrappers, `--no-profile`, default --jobs (one judge on one GPU): the bar is about 208 s;
#   3. `harness run --device cuda --quick` of every target's built-ins (the bar: 90 s for the six built-ins).
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
# compile caches are kept per candidate file (harness/runner/readonly.py): warmed for the wrappers' file and
# for every built-in (a user's second run; a cold Triton build costs about 25 s once per file)
args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
python3 -m harness verify --device cuda --target quantize_k_cache --examples 3 \
  --candidate /tmp/wrappers.py:wrapper_02_fused > /dev/null 2>&1
echo "the wrappers' compile caches warm ($(left) s left)" | tee -a "$OUT/runs.txt"
TRACE=1 timed_run "many-default" --target quantize_k_cache --no-profile $args
python3 benchmarks/stage_split.py "$OUT"/many-default/*.json 2>&1 | tee -a "$OUT/runs.txt"
grep TOTAL "$OUT/many-default.trace" | tee -a "$OUT/runs.txt"
grep -h "isolation:" "$OUT"/many-default/*.md | head -1 | cut -c1-300 | tee -a "$OUT/runs.txt"
if [ "$(left)" -gt 150 ]; then
  python3 -m harness verify --device cuda --examples 3 > "$OUT/warm.log" 2>&1
  echo "the built-ins' compile caches warm ($(left) s left)" | tee -a "$OUT/runs.txt"
  TRACE=1 timed_run "built-ins"
  python3 benchmarks/stage_split.py "$OUT"/built-ins/*.json 2>&1 | tee -a "$OUT/runs.txt"
fi
echo "($(left) s left)"
