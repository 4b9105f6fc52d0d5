"""Quality per CPU-hour: train a fixed recipe for a wall-clock budget, then evaluate it.

The recipe is fixed so that versions of the code can be compared on the same footing:
the ``tiny`` preset with its defaults, ``train.seed=0``, on the ``train`` split of the
speech22k corpus. After training, ``wavediff evaluate`` scores the run on ``test_seen``
and ``test_unseen`` against Griffin-Lim, and one Markdown table with the budget, date,
machine and step count is written to ``OUT/quality.md`` (and printed).

    python benchmarks/quality.py --data ../shared/data/speech22k --minutes 60 --out runs/quality

``--eval-only`` re-evaluates an earlier run folder without training. Run it on an idle
machine: the budget is wall-clock, so other work on the same cores lowers the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from wavediff.devices import cpu_name
from wavediff.evaluation.plots import read_training_curves
from wavediff.evaluation.report import ARROW
from wavediff.evaluation.runner import METRICS

RECIPE = {"preset": "tiny", "overrides": ["train.seed=0"], "split": "train"}

log = logging.getLogger("quality")


def _git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _run(cmd: list[str]) -> None:
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="speech22k folder (with train.tsv, test_seen.tsv, "
                                                      "test_unseen.tsv)")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training budget")
    parser.add_argument("--out", default="runs/quality", help="benchmark folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, nargs="+", default=[6], help="sampling steps to evaluate")
    parser.add_argument("--gl-iters", type=int, nargs="+", default=[32], help="Griffin-Lim iterations")
    parser.add_argument("--limit", type=int, default=None, help="only the first N utterances of each test set")
    parser.add_argument("--eval-only", action="store_true", help="skip training; evaluate OUT/run")
    parser.add_argument("--report-only", action="store_true",
                        help="skip training and evaluation; rebuild OUT/quality.md from OUT/eval_*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data, out = Path(args.data), Path(args.out)
    run_dir = out / "run"
    py = [sys.executable, "-m", "wavediff"]
    t0 = time.time()
    if not (args.eval_only or args.report_only):
        cmd = [*py, "train", "--config", RECIPE["preset"], "--data", str(data / f"{RECIPE['split']}.tsv"),
               "--out", str(run_dir), "--max-minutes", str(args.minutes), "--threads", str(args.threads),
               "--no-progress"]
        for o in RECIPE["overrides"]:
            cmd += ["--set", o]
        _run(cmd)
    train_minutes = (time.time() - t0) / 60
    rows = []
    for split in ("test_seen", "test_unseen"):
        report = out / f"eval_{split}"
        cmd = [*py, "evaluate", "--checkpoint", str(run_dir), "--label", f"DiffWave {RECIPE['preset']}",
               "--data", str(data / f"{split}.tsv"),
               "--steps", *map(str, args.steps), "--gl-iters", *map(str, args.gl_iters), "--out", str(report),
               "--threads", str(args.threads)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        if not args.report_only:
            _run(cmd)
        results = json.loads((report / "results.json").read_text())
        for system in results["systems"]:
            rows.append((split, system))
    step = _trained_steps(run_dir)
    header = (f"quality benchmark, {dt.date.today().isoformat()}, code {_git_revision()} (when this table was "
              f"written), {cpu_name()}, "
              f"{args.threads} threads; recipe: "
              f"{RECIPE['preset']} preset, {' '.join(RECIPE['overrides'])}, {args.minutes:g} min wall-clock "
              f"budget ({step} steps)")
    lines = [header, "", "| test set | system | " + " | ".join(f"{m.label} {ARROW[m.better]}" for m in METRICS)
             + " | RTF |",
             "| --- | --- | " + " | ".join("---:" for _ in METRICS) + " | ---: |"]
    for split, system in rows:
        cells = []
        for m in METRICS:
            s = system["metrics"].get(m.key)
            if s is None or s["mean"] is None:
                cells.append("n/a")
            else:
                cells.append(f"{s['mean']:.3f}" + ("" if s["ci95"] is None else f" ± {s['ci95']:.3f}"))
        lines.append(f"| {split} | {system['name']} | " + " | ".join(cells) + f" | {system['rtf']:.3f} |")
    if not (args.eval_only or args.report_only):
        lines.append("")
        lines.append(f"training wall-clock including start-up: {train_minutes:.1f} min")
    table = "\n".join(lines)
    (out / "quality.md").write_text(table + "\n")
    print(table)


def _trained_steps(run_dir: Path) -> int:
    losses = read_training_curves(run_dir)["loss"]
    return int(losses[:, 0].max()) if losses.shape[0] else 0


if __name__ == "__main__":
    main()
