#!/usr/bin/env bash
# One device call after the dequantizer's retune (issue 27): the CUDA tests, `harness bench` of the
# dequantizer's and quantizer's fused candidates at 128 / 16,384 / 1,048,576 tokens (the issue's bar: at
# most 4.64 us at 128 tokens, at least 55% of copy bandwidth at 16,384), `harness run --device cuda --quick`
# of the three targets, timed (issue 25: 90 s for the built-ins); logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m pytest -q -p no:cacheprovider -m cuda 2>&1 | tail -6 | tee "$OUT/test_cuda.log"
python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 1048576 \
  --candidate candidates/dequant_fused.py:dequant_fused --json "$OUT/dequant-bench.json" > "$OUT/dequant-bench.log" 2>&1
echo "dequant bench exit $?"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -12
python3 -m harness bench --device cuda --target quantize_k_cache --sizes 128 16384 1048576 \
  --candidate candidates/fused.py:fused --json "$OUT/quant-bench.json" > "$OUT/quant-bench.log" 2>&1
echo "quant bench exit $?"; grep "│" "$OUT/quant-bench.log" | tail -8
start=$(date +%s.%N)
python3 -m harness run --device cuda --quick --out "$OUT/run" > "$OUT/run.log" 2>&1
code=$?
echo "harness run --device cuda --quick (three targets): exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s" | tee "$OUT/runs.txt"
grep "│\|machine:\|noisy\|rror" "$OUT/run.log" | tail -40 | tee -a "$OUT/runs.txt"
