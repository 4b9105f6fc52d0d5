"""Does the fast training path learn as much per step as the fp32 reference?

Trains the same preset several times from the same seed (the same initial weights, crops,
diffusion steps and noise at every step) with different training setups, then scores each
run's final weights the same way: the ε-prediction error (MSE) on held-out crops at chosen
diffusion steps, every run evaluated by the reference modules in fp32 on the same crops and
noise. The yardstick for "within noise" is a second reference run with another seed: the
spread that a change of random draws alone makes.

Setups (``implementation-precision[@seed]``): ``reference-fp32`` (the reference),
``fused-bf16`` (the CPU default where bf16 is native), ``fused-fp32``, ``reference-bf16``;
``reference-fp32@1`` is the reference with seed 1.

    python benchmarks/precision_learning.py --preset tiny --steps 300 \\
        --setups reference-fp32 fused-bf16 fused-fp32 reference-fp32@1

Without ``--data`` it trains on a synthetic speech-like corpus (:mod:`wavediff.data.synthetic`)
and scores on its held-out split; with ``--data TRAIN --test TEST`` on real audio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def epsilon_errors(model, dataset, schedule, steps_to_score: list[int], crops: int, seed: int) -> dict[int, float]:
    """MSE of ``model``'s ε-prediction at each diffusion step, on ``crops`` fixed crops and noise."""
    from wavediff.data.sampling import mix_seed

    model.implementation = "reference"
    model.eval()
    items = [dataset[(k % len(dataset), mix_seed(seed, k))] for k in range(crops)]
    audio = torch.stack([torch.as_tensor(it["audio"]) for it in items])
    mel = torch.stack([torch.as_tensor(it["mel"]) for it in items])
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(audio.shape, generator=g)
    out = {}
    with torch.no_grad():
        for t in steps_to_score:
            steps = torch.full((crops,), t, dtype=torch.long)
            xt = schedule.add_noise(audio, noise, steps)
            pred = model(xt, steps.float(), mel=mel)
            out[t] = float((pred - noise).square().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--setups", nargs="+", default=["reference-fp32", "fused-bf16", "fused-fp32", "reference-fp32@1"])
    ap.add_argument("--data", default=None)
    ap.add_argument("--test", default=None)
    ap.add_argument("--crops", type=int, default=32, help="held-out crops scored")
    ap.add_argument("--score-steps", type=int, nargs="+", default=None,
                    help="diffusion steps scored (0-based; default: 7 spread over the chain)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from wavediff.audio.mel import MelFrontend
    from wavediff.config import PAPER_RECIPE, load_config
    from wavediff.data.datasets import VocoderDataset
    from wavediff.data.manifest import read_entries
    from wavediff.data.synthetic import make_corpus
    from wavediff.diffusion.schedule import linear_schedule
    from wavediff.training.trainer import Trainer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            train_dir, test_dir = Path(args.data), Path(args.test or args.data)
        else:
            train_dir, test_dir = make_corpus(Path(tmp) / "corpus", num_train=60, num_test=8, seed=0)
        base = load_config(args.preset, ["train.val_every=1000000", "train.checkpoint_every=1000000",
                                         "train.log_every=1000000", *PAPER_RECIPE, *args.overrides])
        frontend = MelFrontend(base.mel)
        test_set = VocoderDataset(read_entries(test_dir), frontend, base.data.crop_frames, Path(tmp) / "test_mels")
        schedule = linear_schedule(base.diffusion.num_steps, base.diffusion.beta_start, base.diffusion.beta_end)
        T = base.diffusion.num_steps
        score_steps = args.score_steps or sorted({0, T // 10, T // 5, 2 * T // 5, 3 * T // 5, 4 * T // 5, T - 1})
        for setup in args.setups:
            name, _, seed = setup.partition("@")
            implementation, precision = name.split("-")
            cfg = base.with_overrides([f"train.implementation={implementation}", f"train.precision={precision}",
                                       f"train.seed={int(seed or base.train.seed)}"])
            run = Path(tmp) / f"run-{setup}"
            started = time.perf_counter()
            trainer = Trainer(cfg, train_dir, run, progress=False, device="cpu")
            result = trainer.fit(args.steps)
            seconds = time.perf_counter() - started
            errors = epsilon_errors(trainer.model, test_set, schedule, score_steps, args.crops, seed=20_261_202)
            tail = [loss for _, loss in result.losses[-50:]]
            rows.append({"setup": setup, "steps": args.steps, "seconds": seconds,
                         "train_loss_last50": statistics.mean(tail), "eps_mse": errors,
                         "eps_mse_mean": statistics.mean(errors.values())})
            print(f"# {setup}: {seconds:.0f} s", file=sys.stderr, flush=True)
    head = " | ".join(f"t={t}" for t in score_steps)
    print(f"# preset {args.preset}, {args.steps} steps each, {args.threads} threads; held-out ε-MSE on "
          f"{args.crops} crops, scored in fp32 by the reference modules")
    print("# command: python benchmarks/precision_learning.py " + " ".join(sys.argv[1:]))
    print(f"| setup | training s | train loss (last 50 steps) | {head} | mean |")
    print("|---|---:|---:|" + "---:|" * (len(score_steps) + 1))
    for r in rows:
        cells = " | ".join(f"{r['eps_mse'][t]:.4f}" for t in score_steps)
        print(f"| {r['setup']} | {r['seconds']:.0f} | {r['train_loss_last50']:.4f} | {cells} | {r['eps_mse_mean']:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
