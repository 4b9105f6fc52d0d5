"""WaveNet generation speed: samples per second of the naive loop (the full forward over the
receptive field per sample, timed at its steady state), the cached torch loop (per-layer queues), the native kernel, and
r9y9's ``wavenet_vocoder`` ``incremental_forward`` built with the same layer sizes, per preset,
at batch 1 (and the native kernel at batch 4), on 1 and 2 threads.

Weights are random (the arithmetic per sample does not depend on them). Every path draws its
samples from the softmax and is conditioned as the preset is (a mel upsampled to the samples, or
nothing); for the mel vocoder the timed span includes the conditioning (the upsampler, and the
native kernel's projection of it onto every layer). ``wavenet_vocoder`` (``pip install
--no-deps wavenet_vocoder==0.1.1``; only its model module is imported) takes the conditioning
already at the sample rate (``upsample_conditional_features=False``), its weight norm removed
(``make_generation_fast_``), its 1x1 input convolution on one-hot inputs (scalar inputs for the mixture of logistics) as it
is built.
Each figure is the best of ``--repeats`` runs after a warm-up; real-time factors are samples per
second over 16 kHz and 22.05 kHz.

    python benchmarks/wavenet_speed.py --threads 1 2 --out runs/wavenet-speed.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import torch

from wavediff.config import load_config
from wavediff.models.family import family_of
from wavediff.models.wavenet.generation import generate
from wavediff.models.wavenet.network import WaveNet

RATES = (16000, 22050)


def _best(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _reference_model(net: WaveNet):
    """``wavenet_vocoder``'s WaveNet with ``net``'s layer sizes, or ``None`` when it is not installed."""
    try:
        from wavenet_vocoder.wavenet import WaveNet as ReferenceWaveNet
    except ImportError:
        return None
    c = net.config
    model = ReferenceWaveNet(out_channels=c.output_channels, layers=c.layers,
                             stacks=c.layers // c.dilation_cycle, residual_channels=c.residual_channels,
                             gate_channels=c.gate_channels, skip_out_channels=c.skip_channels,
                             kernel_size=c.kernel_size, dropout=0.0, cin_channels=net.n_mels or -1, gin_channels=-1,
                             upsample_conditional_features=False, scalar_input=c.output == "mol").eval()
    model.make_generation_fast_()
    return model


def measure(preset: str, threads: int, samples: dict[str, int], repeats: int) -> list[dict]:
    torch.set_num_threads(threads)
    cfg = load_config(preset)
    torch.manual_seed(0)
    net = family_of(cfg).build_model(cfg).eval()
    assert isinstance(net, WaveNet)
    hop = cfg.mel.hop_length

    def mel_for(n: int, batch: int = 1) -> torch.Tensor | None:
        return torch.rand(batch, cfg.mel.n_mels, -(-n // hop)) if net.n_mels else None

    rows = []

    def record(path: str, batch: int, n: int, seconds: float) -> None:
        rate = batch * n / seconds
        row = {"preset": preset, "path": path, "threads": threads, "batch": batch, "samples": n,
               "seconds": round(seconds, 4), "samples_per_s": round(rate, 1),
               **{f"rtf_{r}": round(rate / r, 4) for r in RATES}}
        rows.append(row)
        print(f"| {preset} | {path} | {threads} | {batch} | {n} | {rate:,.0f} | "
              + " | ".join(f"{rate / r:.3g}" for r in RATES) + " |", flush=True)

    with torch.no_grad():
        # the naive loop at its steady state: each sample a forward over a full receptive field
        field, n = net.receptive_field, samples["naive"]
        window = net.start_input(1).unsqueeze(1).expand(1, field).contiguous()
        cond = net.conditioning(field, mel_for(field))
        seconds = _best(lambda: [net.layers_forward(window, cond) for _ in range(n)], repeats)
        record("naive loop (torch, full receptive field)", 1, n, seconds)
        for path, implementation in (("cached loop (torch)", "torch"), ("native kernel", "native")):
            n = samples[implementation]
            mel = mel_for(n)
            seconds = _best(lambda: generate(net, n, mel=mel, implementation=implementation,
                                             generator=torch.Generator().manual_seed(0)), repeats)
            record(path, 1, n, seconds)
        n = samples["native"]
        mel4 = mel_for(n, 4)
        seconds = _best(lambda: generate(net, n, mel=mel4, batch=4, implementation="native",
                                         generator=torch.Generator().manual_seed(0)), repeats)
        record("native kernel", 4, n, seconds)
        reference = _reference_model(net)
        if reference is not None:
            n = samples["reference"]
            mel = mel_for(n)
            cond = None if mel is None else net.upsampler(mel)[..., :n]
            mulaw = cfg.wavenet.output == "mulaw"
            seconds = _best(lambda: reference.incremental_forward(c=cond, T=n, softmax=mulaw, quantize=mulaw),
                            repeats)
            record("wavenet_vocoder incremental_forward", 1, n, seconds)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["wavenet-mulaw", "wavenet-sc09"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--native-samples", type=int, default=44100)
    parser.add_argument("--torch-samples", type=int, default=1000)
    parser.add_argument("--naive-samples", type=int, default=20)
    parser.add_argument("--reference-samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    samples = {"native": args.native_samples, "torch": args.torch_samples, "naive": args.naive_samples,
               "reference": args.reference_samples}
    print("| preset | path | threads | batch | samples | samples/s | × real time 16 kHz | × real time 22.05 kHz |\n"
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = [row for preset in args.presets for threads in args.threads
            for row in measure(preset, threads, samples, args.repeats)]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
