#!/usr/bin/env bash
# One device call: the CUDA tests (`pytest -m cuda`; SKIP_TESTS=1 skips them), then `harness run --device
# cuda --quick` of every target's built-ins with --jobs $JOBS (default 1; JOBS="1 2" runs both), timed, with
# the line profiles unless PROFILE=0 (then --no-profile); logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
if [ -z "${SKIP_TESTS:-}" ]; then
  python3 -m pytest -q -p no:cacheprovider -m cuda 2>&1 | tail -15 | tee "$OUT/test_cuda.log"
fi
for jobs in ${JOBS:-1}; do
  start=$(date +%s.%N)
  flags="--quick --jobs $jobs"; [ "${PROFILE:-1}" = 0 ] && flags="$flags --no-profile"
  python3 -m harness run --device cuda $flags --out "$OUT/run-jobs$jobs" > "$OUT/run-jobs$jobs.log" 2>&1
  code=$?
  echo "harness run --device cuda $flags (six built-ins): exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s" | tee -a "$OUT/runs.txt"
  grep "│" "$OUT/run-jobs$jobs.log" | head -12 | tee -a "$OUT/runs.txt"
done
