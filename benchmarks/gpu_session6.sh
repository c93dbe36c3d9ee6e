#!/usr/bin/env bash
# One device call: the dequantizer's launch shape by token count (small shape below 262,144 tokens, the
# 1M-token tune above), checked (its CUDA tests) and timed with `harness bench` at 128 / 16,384 / 262,144 /
# 1,048,576 tokens; logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_dequant_candidates.py 2>&1 | tail -3 | tee "$OUT/test_cuda.log"
python3 -m harness bench --device cuda --target dequantize_k_cache --sizes 128 16384 262144 1048576 \
  --candidate candidates/dequant_fused.py:dequant_fused --json "$OUT/dequant-bench.json" > "$OUT/dequant-bench.log" 2>&1
echo "dequant bench exit $?"; grep "│\|machine:" "$OUT/dequant-bench.log" | tail -12
python3 benchmarks/dequant_tune_cuda.py --quick --tokens 128 16384 2>&1 | tee "$OUT/dequant-tune-quick.log" | head -24
