#!/usr/bin/env bash
# The second device call of the session of 2026-12-07, evening: the runners' read-only view and the new
# timing checks on CUDA, then issue 25's 24 candidates once more; each step only while BUDGET_S (420) lasts:
#   1. the Triton cache warmed (a short verify of the fused quantizer);
#   2. `harness run --device cuda --quick --target quantize_k_cache` (the footer says which isolation);
#   3. N (24) thin wrappers, `--no-profile`, default --jobs (one judge on one GPU).
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m harness verify --device cuda --target quantize_k_cache --examples 3 \
  --candidate candidates/fused.py:fused > /dev/null 2>&1
echo "Triton cache warm ($(left) s left)"
timed_run quantize --target quantize_k_cache
grep -h "isolation:" "$OUT"/quantize/*.md | head -1 | cut -c1-200
args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
[ "$(left)" -gt 200 ] && timed_run "many-default" --target quantize_k_cache --no-profile $args
echo "($(left) s left)"
