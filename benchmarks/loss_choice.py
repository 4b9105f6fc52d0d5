"""Choose the default training loss by measurement: L1 (lmnt-com/diffwave, WaveGrad) vs L2 (paper).

Trains the ``tiny`` preset with each loss for the same number of steps and seed on the
synthetic corpus of the demo, then vocodes held-out utterances with the fast schedule and
reports log-mel L1 and multi-resolution STFT distance (lower is better) plus the final
validation loss of each run (not comparable across losses; shown for reference).

    python benchmarks/loss_choice.py --steps 200 --out runs/loss_choice
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wavediff.config import load_config
from wavediff.data.synthetic import make_corpus
from wavediff.demo import compare_systems
from wavediff.pipelines import Vocoder
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
    rows = []
    for loss in ("l1", "l2"):
        cfg = load_config("tiny", [f"diffusion.loss={loss}", f"train.seed={args.seed}", "train.val_every=100000"])
        run = out / f"run_{loss}"
        trainer = Trainer(cfg, out / "data" / "train", run, resume=(run / "checkpoints").is_dir(), progress=False)
        trainer.fit(args.steps)
        vocoder = Vocoder.from_checkpoint(run, device="cpu")
        files = sorted((out / "data" / "test").glob("*.wav"))
        scores, _ = compare_systems(vocoder, files, None, steps_list=tuple(args.sampling_steps), seed=args.seed)
        rows += [(loss, s) for s in scores[1:]]
        gl = scores[0]
    print(f"tiny preset, {args.steps} training steps per loss, seed {args.seed}, {len(files)} held-out synthetic "
          f"utterances; {gl.name}: log-mel L1 {gl.log_mel_l1:.3f}, MR-STFT {gl.mr_stft:.3f}")
    print("| loss | sampler | log-mel L1 | MR-STFT |")
    print("| --- | --- | ---: | ---: |")
    for loss, s in rows:
        print(f"| {loss} | {s.name} | {s.log_mel_l1:.3f} | {s.mr_stft:.3f} |")


if __name__ == "__main__":
    main()
