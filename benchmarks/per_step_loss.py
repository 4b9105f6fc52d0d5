"""Where has a class or unconditional model learned anything? Its ε-loss per diffusion step.

For real clips x0 and each chosen step t, draws ε, forms x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε, and
prints the mean squared error of the model's ε-prediction beside a **no-structure baseline**:
the best linear estimate of ε from x_t when the clips are taken as white noise of their
measured power P,

    ε̂_white = √(1−ᾱ_t) / (ᾱ_t P + 1 − ᾱ_t) · x_t,   whose expected error is ᾱ_t P / (ᾱ_t P + 1 − ᾱ_t).

A model below the baseline at step t has learned structure there (the waveform's local
correlations at small t, the clip's envelope and content at large t). A model above it at
large t adds errors to the reverse chain's first steps, where the digit's shape is decided.

    python benchmarks/per_step_loss.py --checkpoint runs/sc09-class-cpu \\
        --data ../shared/data/digits16k/test --clips 64
"""
from __future__ import annotations

import argparse
import json
import math

import torch

from wavediff.data.datasets import ClipDataset
from wavediff.data.labels import label_index, read_labelled_entries
from wavediff.diffusion.schedule import linear_schedule
from wavediff.pipelines import Synthesizer


def white_baseline(xt: torch.Tensor, alpha_bar: float, power: float) -> torch.Tensor:
    """The linear MMSE estimate of ε from ``xt (B, L)`` when x0 is white with ``power``."""
    return (1.0 - alpha_bar) ** 0.5 / (alpha_bar * power + 1.0 - alpha_bar) * xt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run folder (latest checkpoint) or checkpoint folder")
    parser.add_argument("--data", required=True, help="real clips: a folder or manifest (labels as for training)")
    parser.add_argument("--clips", type=int, default=64, help="clips used, spread evenly over the set")
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="0-based diffusion steps (default: 8 spread over the chain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = Synthesizer.from_checkpoint(args.checkpoint, device="cpu")
    model, config = generator.model, generator.config
    class_model = config.model.conditioning == "class"
    entries = read_labelled_entries(args.data)
    stride = max(1, len(entries) // args.clips)
    chosen = entries[::stride][: args.clips]
    labels = None
    if class_model:
        unlabelled = [str(e.path) for e in chosen if e.label is None]
        if unlabelled:
            raise SystemExit(f"a class model needs labelled clips; {unlabelled[0]!r} has no label")
        labels = [label_index(str(e.label), config.model.class_names) for e in chosen]
    # at the level the model was trained on (peak-normalised clips for data.normalize=peak)
    dataset = ClipDataset(chosen, config.mel.sample_rate, config.clip_samples, labels,
                          peak_level=config.data.normalization_peak)
    x0, y = dataset.batch(list(range(len(chosen))), random_offset=False)
    power = float(x0.pow(2).mean())
    d = config.diffusion
    alpha_bars = linear_schedule(d.num_steps, d.beta_start, d.beta_end).alphas_cumprod
    num_steps = len(alpha_bars)
    steps = args.steps or sorted({round(i * (num_steps - 1) / 7) for i in range(8)})

    rng = torch.Generator().manual_seed(args.seed)
    rows = []
    print(f"{len(chosen)} clips, power {power:.5f} (RMS {power ** 0.5:.4f}), T={num_steps}")
    print("| step t | ᾱ_t | SNR dB | model ε-MSE | white-data baseline | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in steps:
        a = float(alpha_bars[t])
        eps = torch.randn(x0.shape, generator=rng)
        xt = a ** 0.5 * x0 + (1.0 - a) ** 0.5 * eps
        with torch.no_grad():
            pred = model(xt, torch.full((len(chosen),), t, dtype=torch.long), labels=y)
        model_mse = float((pred - eps).pow(2).mean())
        base_mse = float((white_baseline(xt, a, power) - eps).pow(2).mean())
        snr_db = 10.0 * math.log10(a * power / (1.0 - a)) if a < 1.0 else float("inf")
        rows.append({"step": t, "alpha_bar": a, "snr_db": snr_db, "model_mse": model_mse, "baseline_mse": base_mse})
        print(f"| {t} | {a:.4f} | {snr_db:.1f} | {model_mse:.5f} | {base_mse:.5f} | {model_mse / base_mse:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "power": power, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
