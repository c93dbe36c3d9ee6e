#!/usr/bin/env bash
# Everything the GPU machine checks, in one call of the device tool (see benchmarks/NOTES.md):
#   launch_check.py (the fused quantizer's cached launch); the CUDA tests; gpu_check.py (the quantizer:
#   bit-exact + timing, every candidate and the baseline in runners; SKIP_GPU_CHECK=1 skips it);
#   dequant_gpu_check.py (the dequantizer's candidates; SKIP_DEQUANT_CHECK=1 skips it); the worked example
#   of examples/; and a full `harness run --device cuda` of every target with its round trips (reports
#   under $OUT/reportsN, with benchmarks/baseline_beside.py's table).  SKIP_LAUNCH_CHECK=1 and SKIP_EXAMPLES=1
#   skip those parts; RUNS=N repeats the full run.  line_profiler travels as a wheel in .whl/.
set -uo pipefail
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$(pwd)
else
  export PYTHONPATH=$(pwd)
fi
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
if [ -z "${SKIP_LAUNCH_CHECK:-}" ]; then
  python3 benchmarks/launch_check.py 2>&1 | tail -20 | tee "$OUT/launch_check.log"
fi
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py "tests/test_dequant_candidates.py" -k "cuda or triton" 2>&1 \
  | tail -15 | tee "$OUT/test_cuda.log"
if [ -z "${SKIP_GPU_CHECK:-}" ]; then
  python3 benchmarks/gpu_check.py --examples 100 --tokens ${TOKENS:-16384 131072 1048576} --json "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
fi
if [ -z "${SKIP_DEQUANT_CHECK:-}" ]; then
  python3 benchmarks/dequant_gpu_check.py --json "$OUT/dequant_gpu_check.json" 2>&1 | tail -30 | tee "$OUT/dequant_gpu_check.log"
fi
# the worked example (examples/README.md): the upstream-style kernel, judged on its declared domain
if [ -z "${SKIP_EXAMPLES:-}" ]; then
  python3 examples/check_twin.py --device cuda 2>&1 | tee "$OUT/check_twin.log"
  for policy in exact dequant; do
    python3 -m harness verify --device cuda --target quantize_k_cache --candidate examples/upstream_quant_triton.py:quantize \
      --policy $policy --json "$OUT/upstream-triton-$policy-cuda.json" > "$OUT/upstream-triton-$policy.log" 2>&1
    echo "examples verify $policy: exit $?"
  done
fi
# RUNS full runs (default 1); the baseline's median beside each candidate, to see any disagreement flagged
for run in $(seq 1 "${RUNS:-1}"); do
  python3 -m harness run --device cuda --out "$OUT/reports$run" 2>&1 | grep -v "━" | tail -70 | tee "$OUT/run$run.log"
  python3 benchmarks/baseline_beside.py "$OUT"/reports$run/*.json 2>&1 | tee -a "$OUT/run$run.log"
done
