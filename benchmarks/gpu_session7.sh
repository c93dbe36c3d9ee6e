#!/usr/bin/env bash
# Device calls of the session of 2026-12-07 (issues 25 and 27); logs and times in $OUT.
#   PART=kernels: the dequantizer's CUDA tests (which warm the Triton cache) and `harness bench` of
#     dequant_fused at 128 / 16,384 / 262,144 / 1,048,576 tokens (the small launch shape below 262,144
#     tokens, the 1M-token tune from there on), then the six built-ins of the two K-cache targets,
#     `harness run --device cuda --quick` per target with --jobs 1 and --jobs 3, wall time and where it went.
#   PART=all: the dequantizer bench, the six built-ins with the default --jobs, 24 wrappers likewise, as
#     far as BUDGET_S (560) allows.
#   PART=short: warm the Triton cache, the six built-ins with the default --jobs, then the dequantizer at
#     128 and 16,384 tokens, as far as BUDGET_S allows.
#   PART=many: N (24) thin wrappers over the quantizer's built-ins, --jobs J (6), and SEQ (6) of them with
#     --jobs 1 for the sequential rate per candidate.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
if [ "${PART:-kernels}" = all ]; then  # one call of everything, most needed first, each step only if time is left
  python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 262144 1048576 \
    --candidate candidates/dequant_fused.py:dequant_fused --json "$OUT/dequant-bench.json" > "$OUT/dequant-bench.log" 2>&1
  echo "dequant bench exit $? ($(left) s left)"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -8 | cut -c1-170
  python3 -m harness verify --device cuda --target quantize_k_cache --examples 3 --candidate candidates/fused.py:fused > /dev/null 2>&1
  for target in quantize_k_cache dequantize_k_cache; do
    [ "$(left)" -gt 120 ] && timed_run "$target-default" --target "$target"
  done
  args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
  [ "$(left)" -gt 150 ] && timed_run many-default --target quantize_k_cache --no-profile $args
  echo "($(left) s left)"
elif [ "${PART:-kernels}" = short ]; then  # little device time: the six built-ins first, then the 128-token bench
  for spec in quantize_k_cache:candidates/fused.py:fused dequantize_k_cache:candidates/dequant_fused.py:dequant_fused; do
    python3 -m harness verify --device cuda --target "${spec%%:*}" --examples 3 --candidate "${spec#*:}" > /dev/null 2>&1
  done
  echo "Triton cache warm ($(left) s left)"
  for target in quantize_k_cache dequantize_k_cache; do
    [ "$(left)" -gt 90 ] && timed_run "$target-default" --target "$target"
  done
  if [ "$(left)" -gt 60 ]; then
    python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 --budget 3 \
      --candidate candidates/dequant_fused.py:dequant_fused > "$OUT/dequant-bench.log" 2>&1
    echo "dequant bench exit $? ($(left) s left)"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -6 | cut -c1-170
  fi
elif [ "${PART:-kernels}" = kernels ]; then
  python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_dequant_candidates.py tests/test_fused_triton.py 2>&1 | tail -3 | tee "$OUT/test_cuda.log"
  python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 262144 1048576 \
    --candidate candidates/dequant_fused.py:dequant_fused --json "$OUT/dequant-bench.json" > "$OUT/dequant-bench.log" 2>&1
  echo "dequant bench exit $?"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -8 | cut -c1-170
  for jobs in 1 3; do
    for target in quantize_k_cache dequantize_k_cache; do
      timed_run "$target-jobs$jobs" --target "$target" --jobs "$jobs"
    done
  done
else
  python3 -m harness verify --device cuda --target quantize_k_cache --examples 3 --candidate candidates/fused.py:fused > /dev/null 2>&1
  echo "Triton cache warm ($(left) s left)"
  args=$(python3 benchmarks/many_candidates.py "${N:-24}" /tmp/wrappers.py)
  timed_run "many-jobs${J:-6}" --target quantize_k_cache --no-profile --jobs "${J:-6}" $args
  seq=$(python3 benchmarks/many_candidates.py "${SEQ:-6}" /tmp/wrappers_seq.py)
  timed_run "seq-jobs1" --target quantize_k_cache --no-profile --jobs 1 $seq
fi
