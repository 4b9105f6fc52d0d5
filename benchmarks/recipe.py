"""Training recipes at equal CPU budget: the paper's recipe against each option of
docs/recipes.md alone and combined, trained on speech22k ``train`` and scored on
``test_unseen`` side by side with Griffin-Lim.

Each setup trains the same preset from the same seed for the same wall-clock budget
(``wavediff train --max-minutes``, one after another on an otherwise idle machine), then
one ``wavediff evaluate`` scores every run with the 6-step sampler and Griffin-Lim 32.
The ``lmnt`` setup trains lmnt-com/diffwave 0.1.7's own model with its own train step
(``benchmarks/lmnt_train.py``; ``pip install --no-deps diffwave==0.1.7``) on the same data
for the same budget. ``--sampler`` scores every run with each sampler variant as well (the
inference-only options, e.g. GLA-Grad's consistency step), so one table holds both kinds.
The table (log-mel L1, MR-STFT, PESQ-WB, STOI, V/UV F1, F0 RMSE, RTF, and each row's budget,
steps and seed) goes to ``OUT/recipe.md`` and is printed.

    python benchmarks/recipe.py --data ../shared/data/speech22k --minutes 10 --out runs/recipe
    python benchmarks/recipe.py --data ../shared/data/speech22k --minutes 10 --setups paper priorgrad --seed 1
    python benchmarks/recipe.py --data ../shared/data/speech22k --out runs/recipe --report-only
    python benchmarks/recipe.py --data ../shared/data/speech22k --minutes 8 --setups paper priorgrad lmnt \
        --sampler noise --sampler gla:consistency=griffin-lim,consistency_steps=6

A setup whose run folder already holds checkpoints is not trained again (``--retrain``
to start it afresh), so an interrupted ablation continues where it stopped.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

from wavediff.config import PAPER_RECIPE
from wavediff.devices import cpu_name
from wavediff.evaluation.plots import read_training_curves
from wavediff.evaluation.report import ARROW
from wavediff.evaluation.runner import METRICS

# every wavediff setup starts from the paper's recipe whatever the preset's defaults (PAPER_RECIPE);
# a setup's own overrides come after and win
SETUPS: dict[str, list[str]] = {
    "paper": [],
    "normalize": ["data.normalize=peak"],
    "priorgrad": ["diffusion.prior=priorgrad"],
    "priorgrad+normalize": ["diffusion.prior=priorgrad", "data.normalize=peak"],
    "spectral": ["train.spectral_loss_weight=0.05"],          # RFWave / FreGrad: 0.01-0.1
    "priorgrad+spectral": ["diffusion.prior=priorgrad", "train.spectral_loss_weight=0.05"],
    # model shape at equal CPU cost (tiny: 12 layers, C=32, cycle 6, receptive field 253), with PriorGrad
    "priorgrad+cycle12": ["diffusion.prior=priorgrad", "model.dilation_cycle=12"],             # r = 8,191
    "priorgrad+deep": ["diffusion.prior=priorgrad", "model.residual_layers=20", "model.residual_channels=24",
                       "model.dilation_cycle=10"],                                            # r = 4,093
    "priorgrad+wide": ["diffusion.prior=priorgrad", "model.residual_layers=8", "model.residual_channels=40",
                       "model.dilation_cycle=8"],                                             # r = 511
    "lmnt": [],   # lmnt-com/diffwave 0.1.7's model and train step (benchmarks/lmnt_train.py), same data and budget
}
COLUMNS = ["log_mel_l1", "mr_stft", "pesq_wb", "stoi", "vuv_f1", "f0_rmse_cents"]

log = logging.getLogger("recipe")


def _run(cmd: list[str]) -> None:
    log.info("$ %s", " ".join(cmd))
    subprocess.run(cmd, check=True)


def _trained_steps(run_dir: Path) -> int:
    if (run_dir / "lmnt.json").is_file():
        return int(json.loads((run_dir / "lmnt.json").read_text())["steps"])
    losses = read_training_curves(run_dir)["loss"]
    return int(losses[:, 0].max()) if losses.shape[0] else 0


def _git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=here).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="speech22k folder (train.tsv, test_unseen.tsv)")
    ap.add_argument("--out", default="runs/recipe")
    ap.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget of every setup")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS),
                    help="setups to train (each once per seed) and evaluate side by side")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="an override for every setup")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="score only the first N test_unseen utterances")
    ap.add_argument("--split", default="test_unseen")
    ap.add_argument("--sampler", action="append", default=[], metavar="LABEL[:KEY=VALUE,...]",
                    help="sampler variants to score every run with (wavediff evaluate --sampler), e.g. "
                         "gla:consistency=griffin-lim,consistency_steps=6; default: each run's own")
    ap.add_argument("--retrain", action="store_true", help="train every setup afresh")
    ap.add_argument("--report-only", action="store_true", help="rebuild the table from OUT's evaluation")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data, out = Path(args.data), Path(args.out)
    py = [sys.executable, "-m", "wavediff"]
    runs = {name: out / f"{name}-seed{args.seed}" for name in args.setups}
    if not args.report_only:
        for name, run in runs.items():
            if args.retrain and run.exists():
                shutil.rmtree(run)
            if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()):
                log.info("%s: %s holds a trained run; not training it again", name, run)
                continue
            if name == "lmnt":
                cmd = [sys.executable, str(Path(__file__).with_name("lmnt_train.py")), "--data",
                       str(data / "train.tsv"), "--out", str(run), "--minutes", str(args.minutes), "--preset",
                       args.preset, "--seed", str(args.seed), "--threads", str(args.threads)]
            else:
                cmd = [*py, "train", "--config", args.preset, "--data", str(data / "train.tsv"), "--out", str(run),
                       "--max-minutes", str(args.minutes), "--threads", str(args.threads), "--no-progress",
                       "--set", f"train.seed={args.seed}"]
                for o in [*PAPER_RECIPE, *SETUPS[name], *args.extra]:
                    cmd += ["--set", o]
            t0 = time.time()
            _run(cmd)
            (run / "budget.json").write_text(json.dumps({"minutes": args.minutes, "wall_minutes":
                                                         (time.time() - t0) / 60, "seed": args.seed,
                                                         "overrides": [*PAPER_RECIPE, *SETUPS[name], *args.extra]}))
        cmd = [*py, "evaluate", "--data", str(data / f"{args.split}.tsv"), "--steps", "6", "--gl-iters", "32",
               "--out", str(out / f"eval-seed{args.seed}"), "--threads", str(args.threads)]
        for name, run in runs.items():
            cmd += ["--checkpoint", str(run), "--label", name]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        for variant in args.sampler:
            cmd += ["--sampler", variant]
        _run(cmd)
    results = json.loads((out / f"eval-seed{args.seed}" / "results.json").read_text())
    metrics = {m.key: m for m in METRICS}
    header = (f"recipe ablation, {dt.date.today().isoformat()}, code {_git_revision()}, {cpu_name()}, "
              f"{args.threads} threads; preset {args.preset}, {args.minutes:g} min of training each, seed "
              f"{args.seed}, {args.split}" + (f" (first {args.limit})" if args.limit else ""))
    lines = [header, "",
             "| system | budget | steps | seed | " + " | ".join(f"{metrics[k].label} {ARROW[metrics[k].better]}"
                                                          for k in COLUMNS) + " | RTF |",
             "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |"]
    for system in results["systems"]:
        name = system["name"]
        label = name.split(",")[0].strip()
        if label == "lmnt":
            name = "lmnt-com/diffwave 0.1.7 (its model and train step: L1, Adam, fp32)" + name[len(label):]
        run = runs.get(label)
        budget, steps, seed = "—", "—", "—"
        if run is not None and run.exists():
            budget, steps, seed = (f"{args.minutes:g} min × {args.threads} cores", str(_trained_steps(run)),
                                   str(args.seed))
        cells = []
        for k in COLUMNS:
            s = system["metrics"].get(k)
            cells.append("n/a" if s is None or s["mean"] is None else
                         f"{s['mean']:.3f}" + ("" if s["ci95"] is None else f" ± {s['ci95']:.3f}"))
        lines.append(f"| {name} | {budget} | {steps} | {seed} | " + " | ".join(cells) + f" | {system['rtf']:.3f} |")
    table = "\n".join(lines)
    (out / f"recipe-seed{args.seed}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
