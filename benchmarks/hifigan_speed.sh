#!/usr/bin/env bash
# HiFi-GAN vocoding speed for every preset at 5 s, 20 s and 600 s of audio, 2 threads, batch 1:
# the generator in windows (the CPU default) and in one pass, fp32 and bf16, and `wavediff vocode`
# end to end. 600 s runs once, without a warm-up. Writes one markdown table per run to OUT_DIR.
#   bash benchmarks/hifigan_speed.sh [OUT_DIR]        (about 15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/hifigan-speed}"
mkdir -p "$out"
for preset in hifigan-v3 hifigan-v2 hifigan-v1 hifigan-audioldm; do
  for seconds in 5 20; do
    python benchmarks/speed.py --preset "$preset" --seconds "$seconds" --repeats 3 --threads 2 \
      --variants gan-fp32 gan-bf16 gan-bf16-onepass cli-fp32 cli-bf16 --json "$out/$preset-$seconds.json" \
      | tee "$out/$preset-$seconds.md"
  done
  long=(gan-bf16)
  case "$preset" in hifigan-v3|hifigan-v2) long+=(cli-bf16) ;; esac
  python benchmarks/speed.py --preset "$preset" --seconds 600 --repeats 1 --warmup 0 --threads 2 \
    --variants "${long[@]}" --json "$out/$preset-600.json" | tee "$out/$preset-600.md"
done
