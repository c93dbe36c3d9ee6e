# Sourced by the GPU session scripts (gpu_session2.sh, gpu_session3.sh): the wheels carried in .whl/ (the
# device image lacks line_profiler), the import path, $OUT, and the card's name in $OUT/card.txt.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$(pwd) PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
