#!/usr/bin/env bash
# One device call: the CUDA tests, then `harness run --device cuda --quick --no-profile` of one target with
# the code at BEFORE (a worktree carried as .before/, e.g. `git worktree add .before <commit>`) and with
# this checkout, alternating, RUNS times each; wall times in $OUT/before_after.txt.  PART=tests or PART=runs
# runs one half (a device call lasts at most 10 minutes).
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
here=$(pwd)
if [ "${PART:-tests}" = tests ]; then
  PYTHONPATH=/tmp/site:$here python3 -m pytest -q -p no:cacheprovider -m cuda 2>&1 | tail -15 | tee "$OUT/test_cuda.log"
  PYTHONPATH=/tmp/site:$here python3 -m harness bench --device cuda --cuda-graphs --target quantize_k_cache \
    --candidate candidates/fused.py:fused --sizes 4096 65536 2>&1 | grep -v "━" | tail -25 | tee "$OUT/cuda_graphs.log"
fi
if [ "${PART:-tests}" = runs ]; then
  for i in $(seq 1 "${RUNS:-1}"); do
    for side in before after; do
      dir=$here; [ $side = before ] && dir=$here/.before
      cd "$dir"
      start=$(date +%s.%N)
      PYTHONPATH=/tmp/site:$dir python3 -m harness run --device cuda --quick --no-profile --target "${TARGET:-quantize_k_cache}" \
        --out "$OUT/$side$i" > "$OUT/$side$i.log" 2>&1
      code=$?
      echo "$side run $i: exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s" | tee -a "$OUT/before_after.txt"
      cd "$here"
    done
  done
fi
