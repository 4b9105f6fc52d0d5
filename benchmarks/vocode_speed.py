"""Wall time to vocode N seconds of 22.05 kHz audio with a preset (default base, 6 steps).

Timing does not depend on the weights, so an untrained model of the preset is used unless
``--checkpoint`` is given. Reports the median of ``--repeats`` calls of
``Vocoder.vocode`` (mel given; model loaded) and one end-to-end ``wavediff vocode`` run in a
subprocess (start-up, loading, mel, sampling, writing the wav).

    python benchmarks/vocode_speed.py --preset base --seconds 5 --steps 6 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wavediff.audio.io import save_audio
from wavediff.config import load_config
from wavediff.data.synthetic import synthesize_utterance
from wavediff.models.diffwave import build_model
from wavediff.pipelines import Vocoder
from wavediff.training.checkpoint import save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
        else:
            cfg = load_config(args.preset)
            torch.manual_seed(0)
            model = build_model(cfg)
            ckpt = save_checkpoint(Path(tmp) / "ckpt", 0, cfg, model.state_dict(), None, keep_last=1)
        vocoder = Vocoder.from_checkpoint(ckpt, device="cpu")
        sr = vocoder.sample_rate
        audio = synthesize_utterance(sr, args.seconds, np.random.default_rng(0))
        wav = Path(tmp) / "input.wav"
        save_audio(wav, audio, sr)
        mel = vocoder.mel(audio)
        vocoder.vocode(mel[:, :32], args.steps)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            vocoder.vocode(mel, args.steps, generator=torch.Generator().manual_seed(0))
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wavediff", "vocode", "--checkpoint", str(ckpt), "--input", str(wav),
                        "--steps", str(args.steps), "--out", str(Path(tmp) / "out"), "--threads",
                        str(args.threads), "--device", "cpu"], check=True, capture_output=True)
        cli = time.perf_counter() - t0
    med = statistics.median(times)
    print(f"preset={vocoder.config.preset} steps={args.steps} threads={args.threads} audio={args.seconds:g}s "
          f"sr={sr}")
    print(f"Vocoder.vocode: median {med:.2f} s over {args.repeats} runs (RTF {med / args.seconds:.2f}); "
          f"runs: {', '.join(f'{t:.2f}' for t in times)}")
    print(f"wavediff vocode end to end (start-up included): {cli:.2f} s (RTF {cli / args.seconds:.2f})")


if __name__ == "__main__":
    main()
