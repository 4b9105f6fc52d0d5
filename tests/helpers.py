"""Test helpers shared by several test modules: tiny audio made here, tiny configs, a random small
vocoder and the reference Algorithm 2 run through the training module. Nothing is read from
outside the repo. Fixtures live in conftest.py; this module holds plain functions and constants
so that test modules and the subprocess scripts of the memory tests can import them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from wavediff.checkpoint import save_checkpoint
from wavediff.config import RunConfig, load_config
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import SamplingSchedule, linear_schedule, sampling_schedule
from wavediff.models.diffwave import DiffWave, build_model

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
SR = 22050
# the paper's recipe (standard prior, plain chain) in place of the tiny preset's measured defaults
PAPER_RECIPE = ["diffusion.prior=standard", "sampler.consistency=none"]
# the paper's 6-step fast schedule (Table 1: β for the base model)
BASE_ETAS = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]

# labelled clips: three "words" (tones) at 8 kHz, Speech Commands file names
CLIP_SR = 8000
CLIP = 1920   # 12 frames x hop 160


def write_tone_files(folder: Path, seconds: Sequence[float], name: str = "clip_{i:02d}", seed: int = 0) -> Path:
    """One ``tone_sweep`` wav at SR per duration in ``seconds``, file i named ``name.format(i=i)``
    and drawn with seed ``seed + i``; the folder is made. Returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, duration in enumerate(seconds):
        sf.write(folder / f"{name.format(i=i)}.wav", tone_sweep(duration, seed=seed + i), SR)
    return folder


def run_wavediff(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m wavediff ARGS`` in a subprocess with no standard input; output captured as text."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "wavediff", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def tone_sweep(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: harmonics of a gliding F0 plus a little noise, peak < 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 60 * t / max(seconds, 1e-3)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 15))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    x = 0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


def make_bad_corpus(folder: Path) -> dict[str, str]:
    """Eight good clips and one file of each bad kind; returns file name -> expected kind."""
    folder.mkdir(parents=True)
    for i in range(8):
        sf.write(folder / f"good_{i}.wav", tone_sweep(0.5 + 0.05 * i, seed=i), SR)
    (folder / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (folder / "text.flac").write_text("this is not audio\n")
    good = (folder / "good_0.wav").read_bytes()
    (folder / "cut_header.wav").write_bytes(good[:30])
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), SR)
    nan = tone_sweep(0.5, seed=20)
    nan[100:110] = np.nan
    sf.write(folder / "nan.wav", nan, SR, subtype="FLOAT")
    inf = tone_sweep(0.5, seed=21)
    inf[7] = np.inf
    sf.write(folder / "inf.wav", inf, SR, subtype="FLOAT")
    sf.write(folder / "rate44k.wav", tone_sweep(0.5, sr=44100, seed=22), 44100)
    left, right = tone_sweep(0.5, seed=23), tone_sweep(0.5, seed=24)
    sf.write(folder / "stereo.wav", np.stack([left, right], axis=1), SR)
    sf.write(folder / "short.wav", tone_sweep(0.02, seed=25), SR)
    return {"garbage.wav": "unreadable", "text.flac": "unreadable", "cut_header.wav": "unreadable",
            "empty.wav": "empty", "nan.wav": "non-finite", "inf.wav": "non-finite", "rate44k.wav": "resampled",
            "stereo.wav": "stereo", "short.wav": "short"}


def labelled_tone(freq: float, seconds: float, seed: int) -> np.ndarray:
    """A tone at ``freq`` (±2%, random phase) under a Gaussian envelope, at CLIP_SR."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CLIP_SR)) / CLIP_SR
    x = np.sin(2 * np.pi * freq * (1 + 0.02 * rng.standard_normal()) * t + rng.uniform(0, 6.28))
    env = np.exp(-((t - seconds / 2) ** 2) / (2 * (seconds / 5) ** 2))
    return (0.4 * x * env + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def write_digits(folder: Path, per_class: int, seed: int = 0) -> Path:
    """Speech Commands names: ``Low_<id>_nohash_0.wav``, ``Mid_...``, ``High_...``; some clips
    shorter and some longer than the 1920-sample clip."""
    folder.mkdir(parents=True, exist_ok=True)
    for c, (word, freq) in enumerate([("Low", 300.0), ("Mid", 900.0), ("High", 2400.0)]):
        for k in range(per_class):
            seconds = (0.18, 0.24, 0.3)[k % 3]
            sf.write(folder / f"{word}_{seed:02d}{c}{k:03d}_nohash_0.wav",
                     labelled_tone(freq, seconds, seed * 1000 + c * 100 + k), CLIP_SR)
    return folder


def clip_config(conditioning: str, **extra: str) -> RunConfig:
    """A tiny class-conditional (``conditioning='class'``) or unconditional generator on CLIP_SR
    clips; ``extra`` adds ``section.key=value`` overrides."""
    over = ["mel.sample_rate=8000", "mel.f_max=4000", "mel.hop_length=160", "mel.n_fft=512", "mel.win_length=512",
            "data.crop_frames=12", "data.val_count=3", "model.residual_layers=3", "model.residual_channels=8",
            "model.dilation_cycle=3", "model.step_hidden_dim=32", "model.step_embedding_dim=16",
            "model.label_embedding_dim=8", "diffusion.num_steps=20", "diffusion.beta_end=0.2",
            "train.batch_size=4", "train.log_every=2", "train.val_every=4", "train.checkpoint_every=4",
            "train.val_batches=1", "train.precision=fp32",
            "data.normalize=none"]   # clips as recorded: the chain's output is compared unscaled
    over += [f"{k}={v}" for k, v in extra.items()]
    preset = "sc09-class-cpu" if conditioning == "class" else "sc09-uncond-cpu"
    if conditioning == "class":
        over.append("model.class_names=[]")
    return load_config(preset, over)


def random_vocoder_model(overrides: list[str] | tuple[str, ...] = ()) -> tuple[RunConfig, DiffWave]:
    """A small vocoder whose every weight is non-zero (the zero-initialised output layer too)."""
    cfg = load_config("tiny", ["model.residual_layers=6", "model.residual_channels=16", "model.dilation_cycle=3",
                               *PAPER_RECIPE, *overrides])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return cfg, model


def fast_chain(cfg: RunConfig, steps: int = 6) -> SamplingSchedule:
    """The config's ``steps``-step sampling chain (the fast schedule at 6 steps)."""
    sched = linear_schedule(cfg.diffusion.num_steps, cfg.diffusion.beta_start, cfg.diffusion.beta_end)
    return sampling_schedule(sched, steps, cfg.diffusion.fast_schedule)


def reference_vocode(model: DiffWave, mel: torch.Tensor, chain: SamplingSchedule, seed: int) -> torch.Tensor:
    """Algorithm 2 with the training module, the conditioner recomputed at every step.
    mel (n_mels, F) -> audio (F * hop,)."""
    with torch.no_grad():
        return sample(lambda x, t: model(x, t, mel=mel.unsqueeze(0)), (1, mel.shape[-1] * model.hop_length),
                      chain, generator=torch.Generator().manual_seed(seed))[0]


def untrained_run(root: Path, seed: int, overrides: list[str] | tuple[str, ...] = ()) -> Path:
    """A run folder of a 3-layer, 8-channel ``tiny`` vocoder (the paper's recipe): an untrained
    checkpoint at step 7, its output layer drawn from N(0, 0.1²) so that it is not silent, and a
    hand-written metrics.jsonl whose last line is cut short."""
    config = load_config("tiny", ["model.residual_layers=3", "model.residual_channels=8", *PAPER_RECIPE,
                                  *overrides])
    torch.manual_seed(seed)
    model = build_model(config)
    torch.nn.init.normal_(model.output_projection.weight, std=0.1)
    save_checkpoint(root / "checkpoints", 7, config, model.state_dict(), None, keep_last=1)
    rows = [{"step": s, "loss": 1.0 / s, "grad_norm": 0.1} for s in range(1, 8)]
    rows.insert(4, {"step": 4, "val_loss": 0.3, "val_loss_ema": 0.25})
    (root / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{\"step\": 8, \"lo")
    return root


_PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, {tests!r})
    from helpers import fast_chain, random_vocoder_model
    from wavediff.inference import EngineMode, InferenceEngine

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    cfg, model = random_vocoder_model()
    frames, mode, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    engine = (InferenceEngine(model) if mode == "none"          # caches every layer's projection
              else InferenceEngine(model, mode=EngineMode.stream(8192)) if mode == "stream"
              else InferenceEngine(model, mode=EngineMode.chunks(int(mode)), cache_bytes=0))   # caches nothing
    engine.vocode([torch.rand(cfg.mel.n_mels, 4)], fast_chain(cfg, steps))
    mel = torch.rand(cfg.mel.n_mels, frames)
    open("/proc/self/clear_refs", "w").write("5")     # reset the peak (VmHWM) to the current RSS
    base = rss("VmRSS")
    engine.vocode([mel], fast_chain(cfg, steps))
    print(json.dumps(rss("VmHWM") - base))
""")


def peak_memory_growth(frames: int, mode: str, steps: int = 1) -> int:
    """Bytes the peak RSS grows by while a fresh process vocodes ``frames`` mel frames with
    ``random_vocoder_model`` in ``mode``: 'none' (one pass), 'stream', or a chunk size in samples.
    Linux only (reads /proc/self/status)."""
    script = _PEAK_SCRIPT.format(tests=str(TESTS_DIR))
    out = subprocess.run([sys.executable, "-c", script, str(frames), mode, str(steps)], capture_output=True,
                         text=True, check=True, env={"OMP_NUM_THREADS": "1", **os.environ})
    return json.loads(out.stdout.strip().splitlines()[-1])
