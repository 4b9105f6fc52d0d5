"""Shared fixtures: tiny audio made here, tiny configs; nothing is read from outside the repo."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wavediff.config import load_config

SR = 22050
# the paper's recipe (standard prior, plain chain) in place of the tiny preset's measured defaults
PAPER_RECIPE = ["diffusion.prior=standard", "sampler.consistency=none"]


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


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Ten short wavs (0.4 s to 1.3 s) and one clip shorter than a crop."""
    folder = tmp_path / "audio"
    folder.mkdir()
    for i in range(10):
        sf.write(folder / f"clip_{i:02d}.wav", tone_sweep(0.4 + 0.1 * i, seed=i), SR)
    sf.write(folder / "short.wav", tone_sweep(0.05, seed=99), SR)
    return folder


@pytest.fixture
def micro_config():
    """A very small vocoder that trains a step in well under a second; fp32, so runs that should
    agree (resumed, accumulated, distributed) agree to float rounding (bf16 has its own tests).
    The paper's standard prior and plain chain, not the ``tiny`` preset's PriorGrad and GLA-Grad
    defaults (their own tests set them)."""
    return load_config("tiny", [
        "train.precision=fp32", *PAPER_RECIPE,
        "model.residual_layers=4", "model.residual_channels=8", "model.dilation_cycle=2",
        "data.crop_frames=8", "data.val_count=2", "train.batch_size=4", "train.learning_rate=2e-3",
        "train.log_every=2", "train.val_every=4", "train.checkpoint_every=4", "train.keep_last=2",
        "train.val_batches=1",
    ])
