"""Does reduced precision change what a checkpoint says? fp32 against bf16 and int8 on the same noise.

Runs ``wavediff evaluate`` (the same utterances, the same per-utterance noise seed) once per
precision and prints, per metric, the mean and its difference from fp32, plus the mean
per-utterance difference and its 95% interval. The issue's bar: log-mel L1 and MR-STFT
within 1% of fp32, PESQ within 0.05.

    python benchmarks/precision_quality.py --checkpoint runs/quality-2026-11-21/run \\
        --data ../shared/data/speech22k/test_unseen.tsv --limit 20 --out runs/precision_quality
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from wavediff.evaluation.runner import evaluate
from wavediff.evaluation.stats import summarise

METRICS = ("log_mel_l1", "mr_stft", "pesq_wb", "stoi", "mcd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reports = {}
    for precision in args.precisions:
        report = evaluate([args.checkpoint], args.data, Path(args.out) / precision, steps=[args.steps], gl_iters=[],
                          limit=args.limit, device="cpu", precision=precision, labels=["diffwave"])
        reports[precision] = report
    system = reports[args.precisions[0]].systems[0].spec.slug
    ref = args.precisions[0]
    rows = []
    header = f"| metric | {' | '.join(args.precisions)} | " + " | ".join(
        f"{p} - {ref} (mean ± 95% CI over utterances, % of {ref})" for p in args.precisions[1:]) + " |"
    print(header)
    print("|" + "---|" * (1 + len(args.precisions) + len(args.precisions) - 1))
    for metric in METRICS:
        per = {p: np.array([u.scores[system].get(metric, np.nan) for u in reports[p].utterances], dtype=float)
               for p in args.precisions}
        means = [np.nanmean(per[p]) for p in args.precisions]
        cells = [f"{m:.4f}" for m in means]
        diffs = []
        for p in args.precisions[1:]:
            s = summarise(per[p] - per[ref])
            rel = 100 * s.mean / abs(means[0]) if means[0] else float("nan")
            diffs.append(f"{s.mean:+.4f} ± {s.ci95:.4f} ({rel:+.2f}%)")
        print(f"| {metric} | " + " | ".join(cells) + " | " + " | ".join(diffs) + " |")
        rows.append({"metric": metric, "means": dict(zip(args.precisions, means))})
    rtf = {p: reports[p].systems[0].rtf for p in args.precisions}
    print("RTF: " + ", ".join(f"{p} {v:.3f}" for p, v in rtf.items()))
    (Path(args.out) / "summary.json").write_text(json.dumps({"rows": rows, "rtf": rtf, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()
