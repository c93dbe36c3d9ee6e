# Sourced by the GPU session scripts (gpu_session7.sh, gpu_session8.sh): the wheels carried in .whl/ (the
# device image lacks line_profiler), the import path, $OUT, and the card's name in $OUT/card.txt.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$(pwd) PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
# timed_run LABEL ARGS...: one `harness run --device cuda --quick ARGS`, its wall time, stages and verdicts
# into $OUT/runs.txt (its report and JSON in $OUT/LABEL); left: seconds this call has of BUDGET_S (560).
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$(date +%s.%N)"; }
timed_run() {
  local label=$1; shift
  local start; start=$(date +%s.%N)
  # TRACE=1: through benchmarks/traced_run.py, whose per-size timing split goes to $OUT/LABEL.trace
  if [ -n "${TRACE:-}" ]; then
    python3 benchmarks/traced_run.py "$OUT/$label.trace" run --device cuda --quick "$@" --out "$OUT/$label" > "$OUT/$label.log" 2>&1
  else
    python3 -m harness run --device cuda --quick "$@" --out "$OUT/$label" > "$OUT/$label.log" 2>&1
  fi
  local code=$?
  echo "$label: exit $code, $(elapsed "$start") s  [harness run --device cuda --quick $*]" | tee -a "$OUT/runs.txt"
  grep "judging\|noisy" "$OUT/$label.log" | tee -a "$OUT/runs.txt"
  grep -A30 "┃ candidate .*┃ verdict" "$OUT/$label.log" | grep "│" | cut -c1-150 | tee -a "$OUT/runs.txt"
}
left() { echo $(( ${BUDGET_S:-560} - ($(date +%s) - T0) )); }
T0=$(date +%s)
