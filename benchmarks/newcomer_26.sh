#!/usr/bin/env bash
# Issue 26's newcomer commands, re-run in one go on this machine (quiet), outputs to stdout:
#   bash benchmarks/newcomer_26.sh > benchmarks/newcomer-26-cpu-<machine>.txt 2>&1
set -uo pipefail
T=$(mktemp -d)
say() { printf '\n$ %s\n' "$*"; }
run() { say "$@"; "$@"; echo "[exit $?]"; }
run harness machine
# two back-to-back runs of the same commit, compared; then the gate on unchanged code
for r in a b; do
  say "harness run --target quantize_k_cache --quick --out $T/$r   (wall time below)"
  start=$(date +%s.%N); harness run --target quantize_k_cache --quick --out "$T/$r" > "$T/$r.log" 2>&1; code=$?
  echo "[exit $code, $(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" $start $(date +%s.%N)) s]"
done
COLUMNS=140 run harness compare "$T/a/quantize_k_cache-cpu.json" "$T/b/quantize_k_cache-cpu.json"
say "harness run --target quantize_k_cache --quick --compare A.json --fail-slower 5% (stderr: the gate's line)"
harness run --target quantize_k_cache --quick --compare "$T/a/quantize_k_cache-cpu.json" --fail-slower 5% --out "$T/c" 2>&1 >/dev/null | grep -i "regression gate"; echo "[exit ${PIPESTATUS[0]}]"
# the terminal at 80, 120 and 140 columns: widest line and any cut name
for w in 80 120 140; do
  say "COLUMNS=$w harness report --from A.json --format terminal | (widest line, lines with …)"
  COLUMNS=$w harness report --from "$T/a/quantize_k_cache-cpu.json" --format terminal > "$T/w$w.txt"
  echo "widest $(python3 -c 'import sys; print(max(map(len, open(sys.argv[1], encoding="utf-8").read().splitlines())))' "$T/w$w.txt") characters, cut names: $(grep -c '…' "$T/w$w.txt")"
done
COLUMNS=80 run harness report --from "$T/a/quantize_k_cache-cpu.json" --format terminal
# headline with a failing candidate, wording of its failure
say "harness run --target quantize_k_cache --quick --candidate candidates/fused.py:fused --candidate tests/wrong_candidates.py:wrong_for_fp16 --out $T/f"
harness run --target quantize_k_cache --quick --candidate candidates/fused.py:fused --candidate tests/wrong_candidates.py:wrong_for_fp16 --no-profile --out "$T/f" > "$T/f.log" 2>&1; echo "[exit $?]"
head -1 "$T/f/quantize_k_cache-cpu.md"; grep "^| " "$T/f/index-cpu.md"; grep -m2 "wrong_for_fp16" "$T/f.log"
run harness bench --sizes 1x1x1 --candidate candidates/fused.py:fused
say "harness export-tests --from A.json -o $T/proj/tests/test_x.py, then pytest from another folder"
mkdir -p "$T/proj/tests" "$T/elsewhere"; ln -s "$(pwd)/oracles" "$T/proj/oracles"; ln -s "$(pwd)/candidates" "$T/proj/candidates"
harness export-tests --from "$T/a/quantize_k_cache-cpu.json" -o "$T/proj/tests/test_x.py" && (cd "$T/elsewhere" && python3 -m pytest -q -p no:cacheprovider --rootdir . "$T/proj/tests/test_x.py" 2>&1 | tail -1)
say "harness bench --help | grep interval"; harness bench --help | grep -i "95"
say "harness run --quick --out $T/all; harness comment --from (three targets) | wc -c; report lines"
harness run --quick --out "$T/all" > "$T/all.log" 2>&1; echo "[exit $?]"
harness comment $(for f in "$T"/all/*-cpu.json; do echo --from "$f"; done) | wc -c
wc -l "$T"/all/*-cpu.md
