"""Training speed: seconds per optimiser step of ``wavediff train`` on this machine, before
and after each optimisation, beside lmnt-com/diffwave's model and train step.

Every variant runs in its own process (its peak memory and page faults are its own) on the
same synthetic corpus (:mod:`wavediff.data.synthetic`; the step's cost does not depend on
what the audio says). The wavediff variants time :meth:`wavediff.training.trainer.Trainer.train_step`
itself, fed by the trainer's own DataLoader, so data loading is included and reported
separately ("data s/step": time spent waiting for the next batch). The script first
measures this CPU's GEMM peak (a 2048^3 product, same thread count) in fp32 and bf16 and
reports each variant's achieved GFLOP/s (the network's useful work: forward and backward,
3x the forward pass's GEMM work) as a share of the peak of the precision it runs in.

Variants:
    reference-fp32        the reference modules in fp32 with glibc's default allocator policy
                          (wavediff before the fused path: the old default)
    reference-fp32-keep   ... with the allocator told to keep freed memory (what the trainer now does)
    reference-bf16        ... bf16 autocast
    fused-fp32            the fused time-major path (wavediff.models.diffwave.fused), fp32
    fused-bf16            ... bf16 with the native gate kernels (the default on CPUs with bf16)
    fused-bf16-torch      ... bf16 with torch operations for the gate (WAVEDIFF_NATIVE=0)
    lmnt-fp32             lmnt-com/diffwave 0.1.7's ``diffwave.model.DiffWave`` and its train step
                          (L1 loss, Adam, grad-norm clipping) on the same batches; needs
                          ``pip install --no-deps diffwave==0.1.7``

    python benchmarks/train_speed.py --preset base --threads 2 --steps 5
    python benchmarks/train_speed.py --variants fused-bf16 lmnt-fp32 --steps 5 --json out.json
    python benchmarks/train_speed.py --device cuda --variants reference-bf16 fused-bf16 lmnt-fp32 --batch 16 32 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import _peak_since_reset, _reset_peak, gemm_peaks  # noqa: E402

VARIANTS = {
    "reference-fp32": {"implementation": "reference", "precision": "fp32", "keep": False},
    "reference-fp32-keep": {"implementation": "reference", "precision": "fp32", "keep": True},
    "reference-bf16": {"implementation": "reference", "precision": "bf16", "keep": True},
    "fused-fp32": {"implementation": "fused", "precision": "fp32", "keep": True},
    "fused-bf16": {"implementation": "fused", "precision": "bf16", "keep": True},
    "fused-bf16-torch": {"implementation": "fused", "precision": "bf16", "keep": True, "native": False},
    "lmnt-fp32": {"lmnt": True, "precision": "fp32", "keep": False},
}
DEFAULT_VARIANTS = list(VARIANTS)


def training_gflop(config, batch: int, samples: int) -> float:
    """Useful work of one step: 3x the forward pass's multiply-adds (backward: input and weight
    gradients), every layer's dilated conv, conditioner and residual/skip projections, the skip
    and output projections; the step embedding and the mel upsampler (under 1%) left out."""
    m = config.model
    C, M, layers = m.residual_channels, config.mel.n_mels, len(m.dilations)
    cond = 2 * M * 2 * C if m.conditioning == "mel" else 0
    per_sample = layers * (2 * C * 2 * C * m.kernel_size + cond + 2 * C * 2 * C) + 2 * C * C + 2 * C
    return 3 * per_sample * batch * samples / 1e9


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _worker(args: argparse.Namespace) -> None:
    spec = VARIANTS[args.worker]
    if spec.get("native") is False:
        os.environ["WAVEDIFF_NATIVE"] = "0"
    torch.set_num_threads(args.threads)
    from wavediff.config import PAPER_RECIPE, load_config
    from wavediff.data.synthetic import make_corpus
    import wavediff.training.trainer as trainer_module

    if not spec["keep"]:   # wavediff before the fused path did not set the allocator policy
        trainer_module.keep_freed_memory = lambda: False
    overrides = [f"train.batch_size={args.worker_batch}", f"data.crop_frames={args.crop_frames}",
                 f"train.precision={spec['precision']}", "train.val_every=1000000",
                 "train.checkpoint_every=1000000", "train.log_every=1000000", *PAPER_RECIPE]   # the paper's step
    if "implementation" in spec:
        overrides.append(f"train.implementation={spec['implementation']}")
    config = load_config(args.preset, overrides)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, _ = make_corpus(Path(tmp) / "corpus", num_train=max(8, args.worker_batch), num_test=1,
                                   duration=(2.0, 3.0), seed=0)
        trainer = trainer_module.Trainer(config, train_dir, Path(tmp) / "run", device=args.device,
                                         progress=False, workers=args.workers)
        loader, sampler = trainer._loader()
        batches = iter(loader)

        def next_batch():
            nonlocal batches
            try:
                return next(batches)
            except StopIteration:
                batches = iter(loader)
                return next(batches)

        if spec.get("lmnt"):
            step = _lmnt_step(config, trainer, device)
        else:
            def step(batch):
                trainer.train_step([batch])
                trainer.step += 1
        times, waits, faults = [], [], []
        resident = None
        for k in range(args.warmup + args.steps):
            if k == args.warmup:
                resident = _reset_peak()
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
            f0 = _faults()
            t0 = time.perf_counter()
            batch = next_batch()
            t1 = time.perf_counter()
            step(batch)
            _sync(device)
            t2 = time.perf_counter()
            if k >= args.warmup:
                times.append(t2 - t0)
                waits.append(t1 - t0)
                faults.append(_faults() - f0)
            print(f"# {args.worker} step {k}: {t2 - t0:.2f} s", file=sys.stderr, flush=True)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_since_reset()
    print(json.dumps({"variant": args.worker, "times": times, "waits": waits, "faults": faults, "peak_bytes": peak,
                      "resident_before_bytes": resident, "samples": config.data.crop_frames * config.mel.hop_length,
                      "precision": spec["precision"]}))


def _lmnt_step(config, trainer, device: torch.device):
    """lmnt-com/diffwave's model (``diffwave.model`` only) and its training step
    (:func:`lmnt_train.lmnt_model_and_step`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lmnt_train import lmnt_model_and_step

    return lmnt_model_and_step(config, device)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="base")
    ap.add_argument("--batch", type=int, nargs="+", default=[16], help="batch sizes (each variant at each)")
    ap.add_argument("--crop-frames", type=int, default=62)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (the CPU default: 0)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    ap.add_argument("--json", default=None, help="also write every row as JSON here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-batch", type=int, default=16, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    from wavediff.config import load_config
    from wavediff.devices import cpu_name

    device = torch.device(args.device)
    peaks = gemm_peaks(args.threads, device)
    config = load_config(args.preset, [f"data.crop_frames={args.crop_frames}"])
    samples = args.crop_frames * config.mel.hop_length
    print(f"# {date.today().isoformat()}; {cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}; "
          f"{args.threads} threads; torch {torch.__version__}; {platform.python_version()}")
    print("# GEMM peak measured now (2048^3 on CPU, 8192^3 on CUDA): "
          + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s")
    print(f"# command: python benchmarks/{Path(__file__).name} " + " ".join(sys.argv[1:]))
    print("| variant | preset | batch | crop | precision | threads | device | s/step (median) | data s/step "
          "| samples/s | GFLOP/s | of GEMM peak | peak memory (GB) | minor faults/step |")
    print("|---|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for batch in args.batch:
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--worker", variant, "--worker-batch", str(batch), "--preset",
                   args.preset, "--crop-frames", str(args.crop_frames), "--threads", str(args.threads), "--device",
                   args.device, "--workers", str(args.workers), "--steps", str(args.steps), "--warmup",
                   str(args.warmup)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"| {variant} | {args.preset} | {batch} | failed: {done.stderr.strip().splitlines()[-1:]} |")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            med = statistics.median(result["times"])
            gflops = training_gflop(config, batch, samples) / med
            peak = peaks["bf16" if result["precision"] == "bf16" else "fp32"]
            row = {**result, "batch": batch, "median_s": med, "samples_per_s": batch * samples / med,
                   "gflops": gflops, "peak_gflops": peak, "data_s": statistics.median(result["waits"]),
                   "faults_per_step": statistics.median(result["faults"])}
            rows.append(row)
            print(f"| {variant} | {args.preset} | {batch} | {args.crop_frames} | {result['precision']} | {args.threads} "
                  f"| {args.device} | {med:.2f} | {row['data_s']:.3f} | {row['samples_per_s']:.0f} | {gflops:.0f} "
                  f"| {100 * gflops / peak:.0f}% | {(result['peak_bytes'] or 0) / 1e9:.2f} "
                  f"| {row['faults_per_step']:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
