#!/usr/bin/env bash
# Every GPU check the open issues ask for, as one run that fits the device tool's 10-minute
# command limit; results land in $OUT (default runs/gpu_burst). Not yet run on a GPU.
#
# Prepare on the development machine (the GPU machine reaches no package index; its python3
# is 3.12 with torch, numpy, scipy, safetensors, tensorboard, tqdm, but no soundfile/librosa):
#   echo /.whl/ >> .git/info/exclude; echo /data_local/ >> .git/info/exclude
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#       soundfile librosa soxr diffwave==0.1.7
#   mkdir -p data_local/speech22k && cp <a few hundred speech22k train wavs, < 40 MB> data_local/speech22k/
# then call the device tool with carry [".whl", "data_local"] and the command
#   bash benchmarks/gpu_burst.sh
# Steps (each bounded by `timeout` so later ones still run):
#   1. install: the carried wheels, then wavediff itself without dependencies;
#   2. the test suite's CUDA-relevant part on the GPU (fused vs reference on CUDA included);
#   3. training speed (benchmarks/train_speed.py --device cuda) at batch 16 and larger batches,
#      reference (cuDNN) against fused, bf16, and lmnt-com/diffwave's train step on the same GPU;
#   4. inference speed (benchmarks/speed.py --device cuda), against the paper's 5.6x real time on a V100;
#   5. WaveNet: its tests, and wavenet-mulaw's training speed on CUDA (40 s, batch 16);
#   5b. WaveGrad and the samplers: their tests, and a minute of the 15.8M `wavegrad` preset on CUDA
#      (batch 32, bf16), its weights back under $OUT/wavegrad-weights;
#   6. a training burst of the bundled vocoder's recipe (tiny, PriorGrad's prior) warm-started from
#      the bundled weights (--init-from), on data_local/speech22k (synthetic audio when absent), for
#      the remaining minutes; the weights come back under $OUT/burst. Score them with
#      `wavediff evaluate` on test_unseen and ship them with benchmarks/bundle_vocoder.py if better.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_burst}"
mkdir -p "$OUT"
PY=python3
log() { echo "== $(date +%T) $*" | tee -a "$OUT/burst.log"; }

log "install"
if [ -d .whl ]; then $PY -m pip install -q --no-index --find-links .whl soundfile librosa soxr 2>&1 | tail -2; fi
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | tail -2
if [ -d .whl ]; then $PY -m pip install -q --no-deps --no-index --find-links .whl diffwave==0.1.7 2>&1 | tail -2; fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$OUT/burst.log"

log "tests (fused path and training)"
timeout 90 $PY -m pytest -q -x tests/models/diffwave 2>&1 | tail -5 | tee -a "$OUT/burst.log"

log "training speed"
timeout 200 $PY benchmarks/train_speed.py --device cuda --threads 8 --steps 10 --warmup 3 --batch 16 64 \
    --variants reference-bf16 fused-bf16 reference-fp32 lmnt-fp32 --json "$OUT/train_speed.json" \
    2>>"$OUT/burst.log" | tee "$OUT/train_speed.md"

log "inference speed"
timeout 120 $PY benchmarks/speed.py --device cuda --seconds 5 --repeats 5 \
    --variants reference engine-fp32 engine-bf16 engine-bf16-stream 2>>"$OUT/burst.log" | tee "$OUT/speed.md"

log "wavenet (tests on the CPU side of the machine; 40 s of wavenet-mulaw training on CUDA: steps/s)"
timeout 25 $PY -m pytest -q -x tests/models/wavenet 2>&1 | tail -3 | tee -a "$OUT/burst.log"
WNDATA=data_local/speech22k
[ -d "$WNDATA" ] || { $PY -c "from wavediff.data.synthetic import make_corpus; make_corpus('$OUT/wn-synthetic', num_train=40)"; WNDATA="$OUT/wn-synthetic/train"; }
timeout 60 $PY -m wavediff train --config wavenet-mulaw --data "$WNDATA" --out "$OUT/wavenet" --device cuda \
    --set train.batch_size=16 --max-minutes 0.67 --no-progress 2>&1 | tail -3 | tee -a "$OUT/burst.log"
tail -2 "$OUT/wavenet/metrics.jsonl" 2>/dev/null | tee -a "$OUT/burst.log"
rm -rf "$OUT/wavenet" "$OUT/wn-synthetic"

log "wavegrad and samplers (tests; 60 s of wavegrad (15.8M, hop 256) training on CUDA: steps/s; weights back)"
timeout 60 $PY -m pytest -q -x tests/models/wavegrad tests/diffusion/test_solvers.py 2>&1 | tail -3 | tee -a "$OUT/burst.log"
timeout 90 $PY -m wavediff train --config wavegrad --data "$WNDATA" --out "$OUT/wavegrad" --device cuda \
    --precision bf16 --set train.batch_size=32 --max-minutes 1 --no-progress 2>&1 | tail -3 | tee -a "$OUT/burst.log"
tail -2 "$OUT/wavegrad/metrics.jsonl" 2>/dev/null | tee -a "$OUT/burst.log"
wg=$(ls -d "$OUT"/wavegrad/checkpoints/step_* 2>/dev/null | tail -1)
if [ -n "$wg" ]; then mkdir -p "$OUT/wavegrad-weights"; cp "$wg"/model.safetensors "$wg"/config.json "$OUT/wavegrad-weights/"; fi
rm -rf "$OUT/wavegrad"

log "training burst"
DATA=data_local/speech22k
if [ ! -d "$DATA" ]; then
  DATA="$OUT/synthetic/train"
  $PY -c "from wavediff.data.synthetic import make_corpus; make_corpus('$OUT/synthetic', num_train=200)"
fi
BUNDLED=$($PY -c "from wavediff.pretrained import bundled_model; print(bundled_model().path)")
EMAX=$($PY -c "import json; print(json.load(open('$BUNDLED/config.json'))['diffusion']['prior_energy_max'])")
timeout 110 $PY -m wavediff train --config tiny --data "$DATA" --out "$OUT/run" --device cuda --precision bf16 \
    --init-from "$BUNDLED" --set diffusion.prior=priorgrad --set diffusion.prior_energy_max="$EMAX" \
    --set train.checkpoint_every=500 \
    --max-minutes 1.5 --no-progress 2>&1 | tail -5 | tee -a "$OUT/burst.log"
latest=$(ls -d "$OUT"/run/checkpoints/step_* 2>/dev/null | tail -1)
if [ -n "$latest" ]; then
  mkdir -p "$OUT/burst"
  cp "$latest"/model.safetensors "$latest"/config.json "$OUT/burst/"
  cp "$OUT/run/metrics.jsonl" "$OUT/burst/"
fi
rm -rf "$OUT/run" "$OUT/synthetic"
log "done"
