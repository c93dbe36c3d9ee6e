#!/usr/bin/env bash
# One device call for issue 27's dequantizer work: every launch shape of the dequantizer's Triton kernel
# timed as `harness bench` times (benchmarks/dequant_tune_cuda.py), the cached-launch checks of both K-cache
# kernels (benchmarks/launch_check.py for the quantizer; the CUDA tests for both), logs in $OUT.
set -uo pipefail
. "$(dirname "$0")/_gpu_setup.sh"
python3 benchmarks/dequant_tune_cuda.py ${TUNE_ARGS:-} 2>&1 | tee "$OUT/dequant-tune.log" | tail -60
python3 benchmarks/launch_check.py > "$OUT/launch_check.log" 2>&1; echo "launch_check exit $?"; tail -4 "$OUT/launch_check.log"
[ -n "${SKIP_TESTS:-}" ] || python3 -m pytest -q -p no:cacheprovider -m cuda -x 2>&1 | tail -8 | tee "$OUT/test_cuda.log"
