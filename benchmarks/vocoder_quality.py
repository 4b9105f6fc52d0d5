"""Vocode a manifest's utterances with a checkpoint (fast and full chains) and Griffin-Lim.

Each utterance is resynthesised from its own mel (the checkpoint's front-end) and scored
against the recording: log-mel L1 (natural-log mel magnitudes) and multi-resolution STFT
distance (Parallel WaveGAN's three resolutions, spectral convergence + log magnitude).

    python benchmarks/vocoder_quality.py --checkpoint runs/speech22k-tiny \
        --data ../shared/data/speech22k/test_unseen.tsv --steps 6 50 --out runs/eval_unseen
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from wavediff.data.manifest import read_entries
from wavediff.demo import compare_systems, format_table
from wavediff.pipelines import Vocoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, nargs="+", default=[6, 50])
    parser.add_argument("--gl-iters", type=int, default=32)
    parser.add_argument("--out", default=None, help="folder for the wavs and results.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    vocoder = Vocoder.from_checkpoint(args.checkpoint, device="cpu")
    files = [e.path for e in read_entries(args.data)][: args.limit]
    out = Path(args.out) if args.out else None
    if out:
        (out / "audio").mkdir(parents=True, exist_ok=True)
    scores, _ = compare_systems(vocoder, files, out / "audio" if out else None, steps_list=tuple(args.steps),
                                gl_iters=args.gl_iters)
    table = format_table(scores)
    print(f"{len(files)} utterances from {args.data}; checkpoint {args.checkpoint}")
    print(table)
    if out:
        (out / "results.json").write_text(json.dumps([s.__dict__ for s in scores], indent=2))
        (out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
