"""Real class-conditional training on tones; outside the default suite (pytest -m slow).
Three classes of windowed tones (Low 300 Hz, Mid 900 Hz, High 2400 Hz); a small class-conditional
DiffWave trains for a few minutes, then the clips it generates for each label must have their
spectral peak nearest that label's frequency (a closed-form oracle, not a learned classifier),
with and without guidance."""
from __future__ import annotations

import numpy as np
import pytest

from wavediff.pipelines import Synthesizer
from wavediff.training.trainer import Trainer

from helpers import CLIP_SR, clip_config, write_digits


FREQUENCIES = {"low": 300.0, "mid": 900.0, "high": 2400.0}


def peak_frequency(clip: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(clip * np.hanning(len(clip))))
    return float(np.fft.rfftfreq(len(clip), 1 / CLIP_SR)[spectrum.argmax()])


@pytest.mark.slow
def test_a_class_model_generates_the_tone_it_is_asked_for(tmp_path):
    train = write_digits(tmp_path / "train", per_class=24, seed=1)
    cfg = clip_config("class", **{
        "model.residual_layers": "6", "model.residual_channels": "32", "model.dilation_cycle": "6",
        "model.step_hidden_dim": "128", "model.step_embedding_dim": "64", "model.label_embedding_dim": "32",
        "diffusion.num_steps": "50", "diffusion.beta_end": "0.05",
        "diffusion.fast_schedule": "[1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]", "train.batch_size": "16",
        "train.learning_rate": "1e-3", "train.val_every": "1000", "train.checkpoint_every": "1000",
        "train.log_every": "100", "model.label_dropout": "0.2"})
    Trainer(cfg, train, tmp_path / "run", progress=False).fit(max_steps=500)
    gen = Synthesizer.from_checkpoint(tmp_path / "run", device="cpu")
    names = gen.class_names
    freqs = np.array([FREQUENCIES[n] for n in names])
    labels = np.repeat(np.arange(len(names)), 6)
    for w in (1.0, 3.0):
        clips = gen.generate(len(labels), labels.tolist(), steps=50, seed=0, guidance_scale=w).numpy()
        peaks = np.array([peak_frequency(c) for c in clips])
        nearest = np.abs(np.log(peaks[:, None] / freqs[None, :])).argmin(1)
        accuracy = float(np.mean(nearest == labels))
        assert accuracy >= 0.9, (w, accuracy, peaks.round().tolist())
