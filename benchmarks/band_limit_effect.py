"""What a missing high band alone costs in each metric: every recording of a test set scored
against itself low-passed at each cutoff (and, for scale, at half the amplitude), with the same
metrics as ``wavediff evaluate``. A vocoder whose mel stops at a cutoff cannot do better than
that cutoff's row on full-band scoring.

    python benchmarks/band_limit_effect.py --data speech22k/test_unseen.tsv --cutoffs 8000 10000 --limit 5
"""
from __future__ import annotations

import argparse

import numpy as np

from wavediff.audio.filters import low_pass
from wavediff.audio.io import load_audio
from wavediff.audio.mel import MelFrontend
from wavediff.config import load_config
from wavediff.data.manifest import read_entries
from wavediff.evaluation.stats import summarise
from wavediff.metrics.spectral import log_mel_l1, multi_resolution_stft_distance
from wavediff.metrics.speech import SpeechScorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder or manifest of recordings")
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[8000.0, 10000.0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N recordings")
    parser.add_argument("--preset", default="tiny", help="preset whose sample rate and mel front-end are used")
    args = parser.parse_args()
    cfg = load_config(args.preset)
    sr = cfg.mel.sample_rate
    frontend = MelFrontend(cfg.mel)
    variants = {f"low-passed at {c:g} Hz": (lambda x, c=c: low_pass(x, sr, c)) for c in args.cutoffs}
    variants["amplitude × 0.5"] = lambda x: 0.5 * x
    scores: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    for entry in read_entries(args.data)[:args.limit]:
        audio = load_audio(entry.path, sr, resample=True)
        scorer = SpeechScorer(audio, sr)
        for name, change in variants.items():
            est = np.asarray(change(audio), dtype=np.float32)
            row = {"log_mel_l1": log_mel_l1(audio, est, frontend), "mr_stft": multi_resolution_stft_distance(audio, est)}
            row.update(scorer.score(est))
            for key, value in row.items():
                scores[name].setdefault(key, []).append(float(value))
    keys = list(next(iter(scores.values())))
    print("| recording, changed | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for name, row in scores.items():
        cells = []
        for key in keys:
            s = summarise(row[key])
            cells.append(f"{s.mean:.3f} ± {s.ci95:.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
