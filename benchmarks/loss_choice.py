"""Choose the default training loss by measurement: L1 (lmnt-com/diffwave, WaveGrad) vs L2 (paper).

Trains the ``tiny`` preset with each loss for the same number of steps and seed on the
synthetic corpus of the demo, then scores both checkpoints side by side on held-out
utterances with ``wavediff evaluate`` (report in ``OUT/report``).

    python benchmarks/loss_choice.py --steps 200 --out runs/loss_choice
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wavediff.config import PAPER_RECIPE, load_config
from wavediff.data.synthetic import make_corpus
from wavediff.evaluation.report import markdown_table, write_report
from wavediff.evaluation.runner import evaluate
from wavediff.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="runs/loss_choice")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling-steps", type=int, nargs="+", default=[6, 50])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    if not (out / "data" / "train").is_dir():
        make_corpus(out / "data", num_train=60, num_test=8, seed=args.seed)
    runs = []
    for loss in ("l1", "l2"):
        cfg = load_config("tiny", [f"diffusion.loss={loss}", f"train.seed={args.seed}", "train.val_every=100000",
                                  *PAPER_RECIPE])   # the paper's recipe, as measured
        run = out / f"run_{loss}"
        trainer = Trainer(cfg, out / "data" / "train", run, resume=(run / "checkpoints").is_dir(), progress=False)
        trainer.fit(args.steps)
        runs.append(str(run))
    report = evaluate(runs, out / "data" / "test", out / "report", steps=args.sampling_steps, gl_iters=[32],
                      seed=args.seed, device="cpu", labels=["L1", "L2"])
    write_report(report, out / "report")
    print(f"tiny preset, {args.steps} training steps per loss, seed {args.seed}, "
          f"{len(report.utterances)} held-out synthetic utterances")
    print(markdown_table(report))

if __name__ == "__main__":
    main()
