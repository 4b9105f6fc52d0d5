"""Inference speed: the straightforward loop against each optimisation, on this machine.

Every variant runs in its own process (so its peak memory is its own) on the same mel
and noise seed; the real-time factor (RTF = wall time / audio time) is the median of
``--repeats`` timed calls after one warm-up call at the same length
(``--warmup 0`` for very long audio; the CLI variants then time a cold start each run). The script first
measures the GEMM peak of this CPU (a 2048^3 matrix product, the same thread count) in
fp32, bf16 and int8, and reports each variant's achieved GFLOP/s (the network's useful
work: every layer at every step, the conditioner projections once) as a share of the
peak of the precision its convolutions run in. Peak memory is the peak RSS while vocoding (model,
input audio and mel included, the synthetic test signal's own making excluded; on Linux the
peak is reset before the timed calls), and for the CLI variants the whole child process's.

Variants:
    reference         Algorithm 2 calling the training module as training does (the mel
                      upsampled and projected again at every step), fp32
    reference-cond    the same with the upsampled mel computed once (wavediff <= issue 3)
    reference-compile the previous, the model under torch.compile (compile time excluded)
    engine-fp32       the inference engine (wavediff.inference), fp32, one pass
    engine-bf16       ... bf16
    engine-int8       ... dilated convs in int8, the rest bf16
    engine-bf16-int8w ... bf16 with weights rounded to int8
    engine-bf16-chunk ... bf16, chunked in --chunk-seconds windows (bounded memory)
    engine-int8-chunk ... int8, chunked
    engine-{fp32,bf16,int8}-stream
                      ... streaming: every step and layer advance together (bounded memory,
                      each conditioner projection computed once); the CPU default
    engine-{bf16,int8}-stream-torch, engine-int8-torch
                      ... the same without the native kernels (WAVEDIFF_NATIVE=0)
    cli-bf16, cli-int8, cli-int8-chunk, cli-fp32
                      `wavediff vocode` on a wav of that length in a fresh process: start-up,
                      loading, mel, synthesis and writing included (default --chunk-seconds
                      auto: streaming on a CPU)
    gan-fp32, gan-bf16
                      a one-pass vocoder (``--preset hifigan-v1`` ... ``hifigan-audioldm``) through
                      Vocoder.vocode: the generator with its weight norm folded (bf16: a bf16 copy),
                      as ``auto`` runs it on a CPU: windows with an exact overlap (memory flat in length)
    gan-fp32-onepass, gan-bf16-onepass
                      ... the whole mel in one pass (memory grows with length)

    ar-fp32           an autoregressive vocoder (``--preset wavenet-mulaw`` ...) through Vocoder.vocode:
                      sample by sample in the native kernel (see docs/inference.md), fp32
    wg-fp32, wg-bf16  WaveGrad (``--preset wavegrad-cpu`` ...) through Vocoder.vocode: ``--steps`` steps
                      of the torch network over noise levels (bf16: autocast)

For a HiFi-GAN preset only the ``gan-*`` and ``cli-*`` variants apply, for a WaveNet preset
``ar-fp32`` and ``cli-fp32`` (untrained weights: the timing does not depend on them); ``--steps``
is ignored for both. A WaveGrad preset takes ``wg-*``, ``cli-fp32`` and ``cli-bf16``:

    python benchmarks/speed.py --preset wavegrad-cpu --seconds 5 --steps 6 --variants wg-fp32 wg-bf16

    python benchmarks/speed.py --preset wavenet-mulaw --seconds 20 --variants ar-fp32 cli-fp32

    python benchmarks/speed.py --preset hifigan-v3 --seconds 20 --variants gan-fp32 gan-bf16 cli-bf16

    python benchmarks/speed.py --seconds 5 --threads 2 --repeats 5
    python benchmarks/speed.py --seconds 20 --variants cli-bf16 cli-int8 --repeats 5

On a GPU (``--device cuda``; the int8 and ``-torch`` variants are CPU-only): the GEMM peak is
measured on the device in fp32 and bf16, each timed call ends with a device synchronisation,
peak memory is the device's peak allocation, and the engine runs as ``auto`` plans it there
(one pass recorded as a CUDA graph while it fits, else 10 s chunks; ``*-stream`` streams):

    python benchmarks/speed.py --device cuda --seconds 5 --repeats 5 \
        --variants reference engine-fp32 engine-bf16 engine-bf16-stream cli-bf16
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

import numpy as np
import torch

DEFAULT_VARIANTS = ["reference", "engine-int8-torch", "engine-int8", "engine-fp32-stream", "engine-bf16-stream-torch",
                    "engine-bf16-stream", "engine-int8-stream-torch", "engine-int8-stream", "cli-bf16", "cli-int8"]
GAN_VARIANTS = ["gan-fp32-onepass", "gan-fp32", "gan-bf16-onepass", "gan-bf16", "cli-fp32", "cli-bf16"]
AR_VARIANTS = ["ar-fp32", "cli-fp32"]
WG_VARIANTS = ["wg-fp32", "wg-bf16", "cli-fp32", "cli-bf16"]
CONV_PRECISION = {"reference": "fp32", "reference-cond": "fp32", "reference-compile": "fp32",
                  "engine-fp32": "fp32", "engine-bf16": "bf16", "engine-int8": "int8", "engine-bf16-int8w": "bf16",
                  "engine-bf16-chunk": "bf16", "engine-int8-chunk": "int8", "cli-bf16": "bf16",
                  "cli-int8": "int8", "cli-int8-chunk": "int8", "engine-fp32-stream": "fp32",
                  "engine-bf16-stream": "bf16", "engine-int8-stream": "int8", "engine-bf16-stream-torch": "bf16",
                  "engine-int8-stream-torch": "int8", "engine-int8-torch": "int8", "cli-fp32": "fp32",
                  "gan-fp32": "fp32", "gan-bf16": "bf16", "gan-fp32-onepass": "fp32", "gan-bf16-onepass": "bf16",
                  "ar-fp32": "fp32", "wg-fp32": "fp32", "wg-bf16": "bf16"}


CPU_ONLY = ("int8",)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peaks(threads: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """GFLOP/s of a 2048^3 product in fp32, bf16 and (CPU) int8 (median of 5); on CUDA 8192^3."""
    torch.set_num_threads(threads)
    n = 2048 if device.type == "cpu" else 8192
    out = {}
    for name, make, mm in [
        ("fp32", lambda: torch.randn(n, n, device=device), torch.mm),
        ("bf16", lambda: torch.randn(n, n, device=device).to(torch.bfloat16), torch.mm),
        ("int8", lambda: torch.randint(-100, 100, (n, n), dtype=torch.int8), torch._int_mm),
    ]:
        if name in CPU_ONLY and device.type != "cpu":
            continue
        a, b = make(), make()
        mm(a, b)
        _sync(device)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            mm(a, b)
            _sync(device)
            times.append(time.perf_counter() - t0)
        out[name] = 2 * n ** 3 / statistics.median(times) / 1e9
    return out


def network_gflop(config, samples: int, steps: int) -> float:
    """Useful work of one vocode call: every layer at every step, conditioner once."""
    m = config.model
    C, M, layers = m.residual_channels, config.mel.n_mels, len(m.dilations)
    per_step = layers * (2 * C * 2 * C * m.kernel_size + 2 * C * 2 * C) + 2 * C * C + 2 * C + 2 * C
    cond = layers * 2 * M * 2 * C
    return samples * (steps * per_step + cond) / 1e9


def conv_gflop(model, mel: torch.Tensor, modules=None) -> float:
    """GFLOP of one call ``model(mel)``: 2 x the multiply-adds of every convolution among ``modules``
    (default: ``model``'s; counted with forward hooks on this input)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        w = module.weight                       # Conv1d (out, in/g, k); ConvTranspose1d (in, out/g, k)
        fed = output if isinstance(module, torch.nn.Conv1d) else inputs[0]
        total += 2 * fed.numel() * w.shape[1] * w.shape[2]

    hooks = [m.register_forward_hook(count) for m in (modules if modules is not None else model.modules())
             if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    with torch.inference_mode():
        model(mel)
    for h in hooks:
        h.remove()
    return total / 1e9


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> int | None:
    """Reset the process's peak RSS (Linux ``clear_refs``); return the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _peak_since_reset() -> int | None:
    return _status_bytes("VmHWM") if _status_bytes("VmRSS") is not None else None


def _worker(args: argparse.Namespace) -> None:
    """Time one variant in this process; print a JSON line."""
    import warnings

    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from wavediff.config import load_config
    from wavediff.data.synthetic import synthesize_utterance
    from wavediff.diffusion.samplers import sample
    from wavediff.pipelines import Vocoder

    from wavediff.models.family import family_of

    cfg = load_config(args.preset)
    torch.manual_seed(0)
    model = family_of(cfg).build_model(cfg).eval()
    if cfg.family == "diffwave":
        with torch.no_grad():   # the zero-initialised output layer would make eps identically 0
            torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    variant = args.worker
    sr = cfg.mel.sample_rate
    audio = synthesize_utterance(sr, args.seconds, np.random.default_rng(0))
    times: list[float] = []
    peak_note: dict[str, int | None] = {}
    if variant.startswith("cli-"):
        from wavediff.audio.io import save_audio
        from wavediff.checkpoint import save_checkpoint

        precision = variant.split("-")[1]
        chunk = ["--chunk-seconds", str(args.chunk_seconds)] if variant.endswith("-chunk") else []
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = save_checkpoint(Path(tmp) / "ckpt", 0, cfg, model.state_dict(), None, keep_last=1)
            inputs = Path(tmp) / "inputs"
            inputs.mkdir()
            for i in range(args.files):
                save_audio(inputs / f"input{i:03d}.wav", audio, sr)
            for _ in range(args.repeats + args.warmup):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "wavediff", "vocode", "--checkpoint", str(ckpt), "--input",
                                str(inputs), "--out", str(Path(tmp) / "out"), "--steps", str(args.steps), "--threads",
                                str(args.threads), "--device", args.device, "--precision", precision, *chunk],
                               check=True, capture_output=True)
                times.append(time.perf_counter() - t0)
        times = times[args.warmup:]
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    else:
        if variant.startswith("ar-"):
            vocoder = Vocoder(model, cfg, device, precision="fp32")
        elif variant.startswith("wg-"):
            vocoder = Vocoder(model, cfg, device, precision=variant.split("-")[1])
        elif variant.startswith("gan-"):
            model.discriminators = None     # inference holds the generator alone
            vocoder = Vocoder(model, cfg, device, precision=variant.split("-")[1],
                              chunk_seconds=None if variant.endswith("-onepass") else "auto")
        elif variant.startswith("engine-"):
            parts = variant.split("-")
            precision = parts[1]
            vocoder = Vocoder(model, cfg, device, precision=precision,
                              weights="int8" if "int8w" in parts else "float",
                              chunk_seconds=args.chunk_seconds if "chunk" in parts
                              else "stream" if "stream" in parts else "auto" if device.type != "cpu" else None)
        else:
            vocoder = Vocoder(model, cfg, device, precision="fp32", chunk_seconds=None)
        mel = vocoder.mel(audio)
        mels = [mel] * args.batch
        if variant.startswith("reference"):
            chain = vocoder.vocoding.chain(args.steps)
            net = model
            if variant == "reference-compile":
                t0 = time.perf_counter()
                net = torch.compile(model)
            batch_mel = torch.stack(mels)

            def run() -> None:
                with torch.inference_mode():
                    if variant == "reference":
                        denoise = lambda x, t: net(x, t, mel=batch_mel)  # noqa: E731
                    else:
                        cond = model.condition(mel=batch_mel)
                        denoise = lambda x, t: net(x, t, cond=cond)  # noqa: E731
                    sample(denoise, (args.batch, mel.shape[-1] * cfg.mel.hop_length), chain,
                           generator=torch.Generator().manual_seed(0), device=device)
        else:
            def run() -> None:
                vocoder.vocode(mels, args.steps, generator=torch.Generator().manual_seed(0))
        warm = None
        resident = _reset_peak()      # model, inputs and mel are in memory from here on
        if device.type == "cuda":
            _sync(device)
            resident = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        if args.warmup:
            t0 = time.perf_counter()
            run()                               # warm-up at full length (and compile)
            _sync(device)
            warm = time.perf_counter() - t0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _peak_since_reset()
        if peak is None:              # not Linux: the process's lifetime peak
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        else:
            peak_note["resident_before_bytes"] = resident
    files = args.files if variant.startswith("cli-") else 1
    samples = int(round(args.seconds * sr)) // cfg.mel.hop_length * cfg.mel.hop_length * args.batch * files
    if cfg.family == "diffwave":
        gflop = network_gflop(cfg, samples, args.steps)
    elif cfg.family == "wavenet":          # multiply-adds per sample: layers, conditioning projection, head
        w = cfg.wavenet
        cond = cfg.mel.n_mels if cfg.model.conditioning == "mel" else 0
        per_layer = w.kernel_size * w.residual_channels * w.gate_channels + cond * w.gate_channels \
            + w.gate_channels // 2 * (w.residual_channels + w.skip_channels)
        gflop = 2 * samples * (w.layers * per_layer + w.skip_channels * (w.skip_channels + w.output_channels)) / 1e9
    elif cfg.family == "wavegrad":   # one forward on 16 frames, scaled to the length and the steps
        def forward(mel: torch.Tensor) -> torch.Tensor:
            return model(torch.zeros(1, 16 * cfg.mel.hop_length), torch.ones(1), mel=mel)
        per = conv_gflop(forward, torch.zeros(1, cfg.mel.n_mels, 16), modules=model.modules())
        gflop = per * args.steps * samples / (16 * cfg.mel.hop_length)
    else:                       # counted on 16 frames of the folded generator, scaled to the length
        from wavediff.models.hifigan.network import folded_copy

        generator = folded_copy(model.generator)
        gflop = conv_gflop(generator, torch.zeros(1, cfg.mel.n_mels, 16)) * samples / (16 * cfg.mel.hop_length)
    print(json.dumps({"variant": variant, "times": times, "peak_bytes": peak, **peak_note,
                      "warmup_s": None if variant.startswith("cli-") else warm,
                      "gflop": gflop, "audio_s": args.seconds * args.batch * files}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk-seconds", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=1,
                        help="cli-* variants: vocode this many copies of the input in one command (the start-up "
                             "and loading shared; the RTF is over all of them)")
    parser.add_argument("--warmup", type=int, choices=[0, 1], default=1,
                        help="one untimed call at full length first (default 1)")
    parser.add_argument("--variants", nargs="+", default=None, choices=list(CONV_PRECISION),
                        help=f"default: {' '.join(DEFAULT_VARIANTS)} (a HiFi-GAN preset: "
                             f"{' '.join(GAN_VARIANTS)})")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    from wavediff.config import load_config

    family = load_config(args.preset).family
    allowed = {"hifigan": GAN_VARIANTS, "wavenet": AR_VARIANTS, "wavegrad": WG_VARIANTS}.get(
        family, [v for v in CONV_PRECISION if not v.startswith(("gan-", "ar-", "wg-"))])
    if args.variants is None:
        args.variants = allowed if family != "diffwave" else DEFAULT_VARIANTS
    wrong = [v for v in args.variants if v not in allowed]
    if wrong:
        parser.error(f"--preset {args.preset} ({family}): variants {wrong} do not apply; choose from {allowed}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device!r}: choose cpu or cuda[:N]")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {args.device!r}: choose cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible to torch")
        cpu_only = [v for v in args.variants if CONV_PRECISION[v] in CPU_ONLY or v.endswith("-torch")]
        if cpu_only:
            parser.error(f"--device cuda: variants {cpu_only} run on a CPU only")
    peaks = gemm_peaks(args.threads, device)
    from wavediff.devices import cpu_name

    where = cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"# wavediff inference speed, {date.today()}, {where}, {args.threads} threads, torch "
          f"{torch.__version__}, Python {platform.python_version()}")
    size = 2048 if device.type == "cpu" else 8192
    print(f"# GEMM peak measured now ({size}^3): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print("| variant | preset | steps | conv precision | batch | audio (s) | threads | RTF median | runs (s) "
          "| GFLOP/s | of GEMM peak | peak memory (GB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for variant in args.variants:
        cmd = [sys.executable, __file__, "--worker", variant, "--preset", args.preset, "--seconds",
               str(args.seconds), "--steps", str(args.steps), "--batch", str(args.batch), "--threads",
               str(args.threads), "--repeats", str(args.repeats), "--chunk-seconds", str(args.chunk_seconds),
               "--warmup", str(args.warmup), "--device", args.device, "--files", str(args.files)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        if variant.endswith("-torch"):
            env["WAVEDIFF_NATIVE"] = "0"
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(f"| {variant} | failed: {done.stderr.strip().splitlines()[-1] if done.stderr else '?'} |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        med = statistics.median(result["times"])
        precision = CONV_PRECISION[variant]
        gflops = result["gflop"] / med
        row = {**result, "rtf": med / result["audio_s"], "gflops": gflops, "peak_gflops": peaks[precision],
               "precision": precision, "preset": args.preset, "steps": args.steps, "batch": args.batch,
               "seconds": args.seconds, "threads": args.threads}
        rows.append(row)
        print(f"| {variant} | {args.preset} | {args.steps} | {precision} | {args.batch} | {result['audio_s']:g} | "
              f"{args.threads} | {row['rtf']:.3f} | {', '.join(f'{t:.2f}' for t in result['times'])} | "
              f"{gflops:.0f} | {100 * gflops / peaks[precision]:.0f}% | {result['peak_bytes'] / 1e9:.2f} |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"peaks": peaks, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
