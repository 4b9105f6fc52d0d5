"""Shared fixtures: tiny audio made here, tiny configs; nothing is read from outside the repo.
Plain helpers (signals, configs, reference samplers) are in helpers.py."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
import torch

from wavediff.config import RunConfig, load_config
from wavediff.models.diffwave import DiffWave
from wavediff.models.family import register_family, unregister_family
from wavediff.training.classifier_trainer import ClassifierTraining, train_classifier
from wavediff.training.trainer import Trainer

from helpers import (CLIP_SR, PAPER_RECIPE, SR, clip_config, random_vocoder_model, tone_sweep, write_digits,
    write_tone_files)
from toy_family import ToyFamily


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Ten short wavs (0.4 s to 1.3 s) and one clip shorter than a crop."""
    folder = write_tone_files(tmp_path / "audio", [0.4 + 0.1 * i for i in range(10)])
    sf.write(folder / "short.wav", tone_sweep(0.05, seed=99), SR)
    return folder


@pytest.fixture
def micro_config() -> RunConfig:
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


@pytest.fixture
def toy() -> Iterator[ToyFamily]:
    """The two-phase toy family of ``toy_family.py``, registered for one test."""
    family = register_family(ToyFamily())
    yield family
    unregister_family(family.name)


@pytest.fixture
def toy_config(micro_config) -> RunConfig:
    """``micro_config`` of the toy family, checkpointing every 2 steps."""
    return micro_config.with_overrides(["family=toy-gan", "train.val_every=100", "train.checkpoint_every=2"])


@pytest.fixture(scope="module")
def random_vocoder() -> tuple[RunConfig, DiffWave, torch.Tensor]:
    """``helpers.random_vocoder_model()`` and a random 30-frame mel (n_mels, 30)."""
    cfg, model = random_vocoder_model()
    return cfg, model, torch.rand(cfg.mel.n_mels, 30)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """Six labelled clips per class (``helpers.write_digits``)."""
    return write_digits(tmp_path_factory.mktemp("digits") / "train", per_class=6)


@pytest.fixture(scope="module")
def class_run(tmp_path_factory, digits) -> Path:
    """A run folder of a class-conditional generator trained 4 steps on ``digits``."""
    run = tmp_path_factory.mktemp("runs") / "class"
    Trainer(clip_config("class"), digits, run, progress=False).fit(max_steps=4)
    return run


@pytest.fixture(scope="module")
def tone_data(tmp_path_factory) -> tuple[Path, Path]:
    """Train (24 per class) and test (8 per class) folders of labelled clips."""
    root = tmp_path_factory.mktemp("tones")
    return write_digits(root / "train", per_class=24, seed=1), write_digits(root / "test", per_class=8, seed=2)


@pytest.fixture(scope="module")
def classifier_dir(tone_data, tmp_path_factory) -> Path:
    """An audio classifier trained 8 epochs on ``tone_data``."""
    out = tmp_path_factory.mktemp("cls") / "classifier"
    settings = ClassifierTraining(epochs=8, batch_size=16, sample_rate=CLIP_SR, clip_seconds=0.24, width=16,
                                  learning_rate=5e-3)
    train_classifier(tone_data[0], tone_data[1], out, settings=settings, progress=False)
    return out
