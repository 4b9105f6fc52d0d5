#!/bin/bash
# Run the 2-process CPU training check N times in a row under load and count the failures:
# 8 audio files, one corrupt and one empty, --max-steps 6, torchrun --standalone, gloo.
# Failed runs keep their stderr in OUT/fail_<i>.log.
#   bash benchmarks/ddp_repeat.sh [N=25] [OUT=runs/ddp_repeat] [LOAD=1: a parallel busy job]
set -u
N=${1:-25}; OUT=${2:-runs/ddp_repeat}; LOAD=${3:-1}
PY=${PYTHON:-python}
mkdir -p "$OUT"
$PY - "$OUT/data" <<'PYEOF'
import sys, pathlib, numpy as np, soundfile as sf
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
for i in range(6):
    t = np.arange(int(22050 * 0.6)) / 22050
    sf.write(out / f"good_{i}.wav", (0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32), 22050)
(out / "corrupt.wav").write_bytes(rng.bytes(3000))
sf.write(out / "empty.wav", np.zeros(0, np.float32), 22050)
PYEOF
if [ "$LOAD" = 1 ]; then $PY -c "import torch; torch.set_num_threads(1); a=torch.randn(512,512)
while True: a=(a@a).tanh()" & LOADPID=$!; fi
fail=0
for i in $(seq 1 "$N"); do
  rm -rf "$OUT/run"
  if ! $PY -m torch.distributed.run --standalone --nproc-per-node=2 -m wavediff train --config tiny --device cpu \
      --data "$OUT/data" --out "$OUT/run" --max-steps 6 --no-progress --set model.residual_layers=4 \
      --set model.residual_channels=8 --set data.crop_frames=8 --set train.batch_size=4 --set data.val_count=2 \
      --set train.val_every=4 --set train.checkpoint_every=4 --set train.precision=fp32 \
      > "$OUT/last.log" 2>&1 < /dev/null; then
    fail=$((fail + 1)); cp "$OUT/last.log" "$OUT/fail_$i.log"; echo "run $i: FAILED"
  else
    echo "run $i: ok"
  fi
done
[ "${LOADPID:-}" ] && kill "$LOADPID"
echo "$fail failure(s) in $N runs (load=$LOAD)"
