#!/usr/bin/env bash
# The device call of the session of 2026-12-07, afternoon (issues 25 and 27); logs, reports and times in
# $OUT, most needed first, each step only while BUDGET_S (560) lasts:
#   1. the Triton caches warmed (a short verify of each fused kernel: a cold cache costs ~25 s once);
#   2. the six built-ins, `harness run --device cuda --quick --target T` per K-cache target (default --jobs);
#   3. `harness bench` of dequant_fused at 128 / 16,384 / 262,144 tokens (the launch-shape switch);
#   4. N (24) thin wrappers over the quantizer's built-ins with --jobs J (6), then SEQ (6) with --jobs 1
#      (the sequential rate per candidate), both --no-profile.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
for spec in quantize_k_cache:candidates/fused.py:fused dequantize_k_cache:candidates/dequant_fused.py:dequant_fused; do
  python3 -m harness verify --device cuda --target "${spec%%:*}" --examples 3 --candidate "${spec#*:}" > /dev/null 2>&1
done
echo "Triton caches warm ($(left) s left)"
for target in quantize_k_cache dequantize_k_cache; do
  [ "$(left)" -gt 100 ] && timed_run "$target" --target "$target"
done
if [ "$(left)" -gt 60 ]; then
  python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 262144 --budget 2 \
    --candidate candidates/dequant_fused.py:dequant_fused --json "$OUT/dequant-bench.json" > "$OUT/dequant-bench.log" 2>&1
  echo "dequant bench exit $? ($(left) s left)"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -7 | cut -c1-170
fi
args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
[ "$(left)" -gt 200 ] && timed_run "many-jobs${J:-6}" --target quantize_k_cache --no-profile --jobs "${J:-6}" $args
seq=$(python3 benchmarks/many_candidates.py "${SEQ:-6}" /tmp/wrappers_seq.py)
[ "$(left)" -gt 90 ] && timed_run "seq-jobs1" --target quantize_k_cache --no-profile --jobs 1 $seq
echo "($(left) s left)"
