#!/usr/bin/env bash
# HiFi-GAN vocoding speed for every preset at 5 s, 20 s and 600 s of audio, 2 threads, batch 1:
# the generator in windows (the CPU default) and in one pass, fp32 and bf16, and `wavediff vocode`
# end to end, for one file and (V3, V1) for a folder of 10 (the start-up shared). 600 s (not for the
# AudioLDM vocoder) and the folder run once, without a warm-up. Writes one markdown table and JSON per run to OUT_DIR.
#   bash benchmarks/hifigan_speed.sh [OUT_DIR]        (about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/hifigan-speed}"
mkdir -p "$out"
run() {  # name, then speed.py arguments
  local name="$1"; shift
  python benchmarks/speed.py --threads 2 "$@" --json "$out/$name.json" | tee "$out/$name.md"
}
for preset in hifigan-v3 hifigan-v2 hifigan-v1 hifigan-audioldm; do
  variants=(gan-fp32 gan-bf16 gan-bf16-onepass cli-fp32 cli-bf16)
  [ "$preset" = hifigan-audioldm ] && variants=(gan-fp32 gan-bf16 cli-bf16)
  for seconds in 5 20; do
    run "$preset-$seconds" --preset "$preset" --seconds "$seconds" --repeats 3 --variants "${variants[@]}"
  done
  case "$preset" in
    hifigan-v3|hifigan-v1)
      run "$preset-20x10" --preset "$preset" --seconds 20 --files 10 --repeats 1 --warmup 0 --variants cli-bf16 ;;
  esac
  [ "$preset" = hifigan-audioldm ] || \
    run "$preset-600" --preset "$preset" --seconds 600 --repeats 1 --warmup 0 --variants gan-bf16
done
