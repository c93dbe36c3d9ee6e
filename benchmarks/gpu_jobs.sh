#!/usr/bin/env bash
# One device call (issue 25): N thin wrappers over the built-in quantizer candidates judged with --jobs 1
# and with --jobs J on one GPU (`harness run --device cuda --quick --no-profile`); wall times in
# $OUT/jobs.txt.  N=8 J=4 by default; the Triton cache is warmed by a first small run, not counted.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$(pwd) PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/card.txt"
args=$(python3 benchmarks/many_candidates.py "${N:-8}" /tmp/wrappers.py)
[ -n "${SKIP_WARM:-}" ] || python3 -m harness verify --device cuda --target quantize_k_cache --examples 5 --candidate candidates/fused.py:fused > /dev/null 2>&1
for jobs in ${JOBS:-1 4}; do
  start=$(date +%s.%N)
  python3 -m harness run --device cuda --quick --no-profile --target quantize_k_cache --jobs "$jobs" $args \
    --out "$OUT/jobs$jobs" > "$OUT/jobs$jobs.log" 2>&1
  code=$?
  echo "--jobs $jobs, ${N:-8} candidates: exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s" | tee -a "$OUT/jobs.txt"
  grep -A12 "┃ candidate .*┃ verdict" "$OUT/jobs$jobs.log" | grep "│" | tee -a "$OUT/jobs.txt"
done
