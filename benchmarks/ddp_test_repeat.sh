#!/bin/bash
# Run the 2-process CPU test of tests/test_distributed.py N times in a row under load and count
# the failures (both parametrisations each time). Failed runs keep their output in OUT/fail_<i>.log.
#   bash benchmarks/ddp_test_repeat.sh [N=25] [OUT=runs/ddp_test_repeat] [LOAD=1: a parallel busy job]
set -u
N=${1:-25}; OUT=${2:-runs/ddp_test_repeat}; LOAD=${3:-1}
PY=${PYTHON:-python}
TEST=tests/integration/test_distributed.py::test_two_gloo_processes_match_one_process_with_the_same_global_batch
mkdir -p "$OUT"
if [ "$LOAD" = 1 ]; then $PY -c "import torch; torch.set_num_threads(1); a=torch.randn(512,512)
while True: a=(a@a).tanh()" & LOADPID=$!; fi
fail=0
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  if ! $PY -m pytest -q -p no:cacheprovider "$TEST" > "$OUT/last.log" 2>&1 < /dev/null; then
    fail=$((fail + 1)); cp "$OUT/last.log" "$OUT/fail_$i.log"; echo "run $i: FAILED ($(( $(date +%s) - start )) s)"
  else
    echo "run $i: ok ($(( $(date +%s) - start )) s, $(tail -1 "$OUT/last.log"))"
  fi
done
[ "${LOADPID:-}" ] && kill "$LOADPID"
echo "$fail failure(s) in $N runs (load=$LOAD)"
