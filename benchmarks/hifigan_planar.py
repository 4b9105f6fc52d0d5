"""HiFi-GAN's CPU generator planar and channels-last against the same folded generator with 1-D
convolutions, back to back in one process (the ratio is steadier than absolute times on a shared
machine): 20 s of audio, batch 1, windows of the CPU default, the best of 3 after a warm-up, each
form timed twice.

    python benchmarks/hifigan_planar.py --presets hifigan-v3 hifigan-v1 --threads 2
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wavediff.config import load_config
from wavediff.data.synthetic import synthesize_utterance
from wavediff.models.family import family_of
from wavediff.models.hifigan.network import folded_copy
from wavediff.pipelines import Vocoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["hifigan-v3", "hifigan-v1"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| preset | precision | convolutions | best of 3 (s) | × real time |\n| --- | --- | --- | ---: | ---: |")
    for preset in args.presets:
        cfg = load_config(preset)
        torch.manual_seed(0)
        model = family_of(cfg).build_model(cfg).eval()
        model.discriminators = None
        audio = synthesize_utterance(cfg.mel.sample_rate, args.seconds, np.random.default_rng(0))
        for precision in ("bf16", "fp32"):
            vocoder = Vocoder(model, cfg, torch.device("cpu"), precision=precision, chunk_seconds="auto")
            mel = vocoder.mel(audio)
            forms = {"planar (1, k) 2-D, channels-last": vocoder.vocoding.generator,
                     "1-D": folded_copy(model.generator).eval().to(vocoder.vocoding.dtype)}
            for name in list(forms) * 2:
                vocoder.vocoding.generator = forms[name]
                vocoder.vocode([mel], 1)
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    vocoder.vocode([mel], 1)
                    times.append(time.perf_counter() - t0)
                print(f"| {preset} | {precision} | {name} | {min(times):.3f} | {args.seconds / min(times):.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
