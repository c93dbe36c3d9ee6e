#!/usr/bin/env bash
# The device call of the session of 2026-12-07, evening (issue 25's 24-candidate bar); logs, reports and
# times in $OUT, each step only while BUDGET_S (560) lasts:
#   1. the Triton cache warmed (a short verify of the fused quantizer: a cold cache costs ~25 s once);
#   2. N (24) thin wrappers over the quantizer's built-ins, `harness run --device cuda --quick --no-profile`
#      with the default --jobs (one judge on one GPU): the bar is a third of 24 x 26 s, about 208 s;
#   3. the same N with --jobs J (3): whether judges side by side on one GPU pay with many candidates.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m harness verify --device cuda --target quantize_k_cache --examples 3 \
  --candidate candidates/fused.py:fused > /dev/null 2>&1
echo "Triton cache warm ($(left) s left)"
args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
timed_run "many-default" --target quantize_k_cache --no-profile $args
[ "$(left)" -gt 200 ] && timed_run "many-jobs${J:-3}" --target quantize_k_cache --no-profile --jobs "${J:-3}" $args
echo "($(left) s left)"
