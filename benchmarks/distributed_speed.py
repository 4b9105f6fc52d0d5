"""Training steps per second: one process against torchrun with several gloo processes, same global batch.

    python benchmarks/distributed_speed.py --config tiny --steps 30 --out runs/ddp-speed
    python benchmarks/distributed_speed.py --data DATA --config base --nproc 2 --threads 2 --steps 20

Each run trains ``--steps`` optimiser steps of the preset's global batch with ``wavediff train``
(one process with ``--threads`` threads, then ``torchrun --nproc-per-node N`` with
``threads / N`` threads each, so both use the same cores). The rate is taken from the
``seconds`` column of ``metrics.jsonl`` after ``--warmup`` steps, so start-up (imports, the
data check, building the model) is not counted. Without ``--data`` a synthetic corpus is made.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def steps_per_second(run: Path, warmup: int) -> float:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    times = {r["step"]: r["seconds"] for r in rows if "seconds" in r}
    last = max(times)
    return (last - warmup) / (times[last] - times[warmup])


def train(data: Path, config: str, out: Path, steps: int, nproc: int, threads: int, extra: list[str]) -> None:
    args = ["-m", "wavediff", "train", "--config", config, "--data", str(data), "--out", str(out),
            "--max-steps", str(steps), "--device", "cpu", "--no-progress", "--threads", str(threads),
            "--set", "train.val_every=1000000", "--set", "train.checkpoint_every=1000000", *extra]
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc-per-node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(launcher + args, check=True, env=env, stdin=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="training audio (default: a synthetic corpus)")
    parser.add_argument("--config", default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads in all (default: all cores)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("runs/ddp-speed"))
    args = parser.parse_args()
    data = args.data
    if data is None:
        from wavediff.data.synthetic import make_corpus

        data = Path(tempfile.mkdtemp()) / "corpus"
        make_corpus(data, num_train=40, num_test=1)
        data = data / "train"
    extra = [x for o in args.overrides for x in ("--set", o)]
    rates = {}
    for nproc in (1, args.nproc):
        out = args.out / f"{nproc}proc"
        if out.exists():
            raise SystemExit(f"{out} exists; choose another --out")
        train(data, args.config, out, args.steps, nproc, max(1, args.threads // nproc), extra)
        rates[nproc] = steps_per_second(out, args.warmup)
    print(f"\n| processes x threads | steps/s ({args.config}, steps {args.warmup + 1}-{args.steps}) | relative |")
    print("|---|---|---|")
    for nproc, rate in rates.items():
        print(f"| {nproc} x {max(1, args.threads // nproc)} | {rate:.3f} | {rate / rates[1]:.2f} |")


if __name__ == "__main__":
    main()
