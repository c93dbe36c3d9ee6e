#!/usr/bin/env bash
# One device call for issue 27's GPU checks: the CUDA tests (all of them: the token-group Triton kernel's
# included), `harness run --device cuda --quick` of every target (three now), timed, and the token-group
# candidates timed at every declared size; logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 -m pytest -q -p no:cacheprovider -m cuda 2>&1 | tail -15 | tee "$OUT/test_cuda.log"
start=$(date +%s.%N)
python3 -m harness run --device cuda --quick --out "$OUT/run" > "$OUT/run.log" 2>&1
code=$?
echo "harness run --device cuda --quick (three targets): exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s" | tee "$OUT/runs.txt"
grep "│\|machine:" "$OUT/run.log" | tee -a "$OUT/runs.txt"
python3 -m harness bench --device cuda --target per_token_group_quant_fp8 \
  --candidate candidates/token_group_fused.py:token_group_fused \
  --candidate candidates/token_group_vectorized.py:token_group_vectorized --json "$OUT/token-group-bench.json" \
  > "$OUT/token-group-bench.log" 2>&1
echo "bench exit $?" >> "$OUT/token-group-bench.log"
tail -40 "$OUT/token-group-bench.log"
