"""Real class-conditional training on tones; outside the default suite (pytest -m slow).

Three classes of windowed tones (300, 900, 2400 Hz); a small class-conditional DiffWave
trains for a few minutes, then the tone classifier (trained here too) must recognise the
label asked for in most generated clips, with and without guidance."""
from __future__ import annotations

import numpy as np
import pytest

from wavediff.metrics.classifier import AudioClassifier
from wavediff.pipelines import Generator
from wavediff.training.classifier import ClassifierTraining, train_classifier
from wavediff.training.trainer import Trainer

from test_generation import SR, clip_config, write_digits


@pytest.mark.slow
def test_a_class_model_generates_the_tone_it_is_asked_for(tmp_path):
    train = write_digits(tmp_path / "train", per_class=24, seed=1)
    test = write_digits(tmp_path / "test", per_class=8, seed=2)
    train_classifier(train, test, tmp_path / "cls", progress=False,
                     settings=ClassifierTraining(epochs=8, batch_size=16, sample_rate=SR, clip_seconds=0.24, width=16,
                                                 learning_rate=5e-3))
    clf = AudioClassifier.load(tmp_path / "cls")
    assert clf.info["test_accuracy"] >= 0.9
    cfg = clip_config("class", **{
        "model.residual_layers": "6", "model.residual_channels": "32", "model.dilation_cycle": "6",
        "model.step_hidden_dim": "128", "model.step_embedding_dim": "64", "model.label_embedding_dim": "32",
        "diffusion.num_steps": "50", "diffusion.beta_end": "0.05",
        "diffusion.fast_schedule": "[1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]", "train.batch_size": "16",
        "train.learning_rate": "1e-3", "train.val_every": "1000", "train.checkpoint_every": "1000",
        "train.log_every": "100", "model.label_dropout": "0.2"})
    Trainer(cfg, train, tmp_path / "run", progress=False).fit(max_steps=1000)
    gen = Generator.from_checkpoint(tmp_path / "run", device="cpu")
    labels = np.repeat(np.arange(3), 8)
    accuracy, predicted = {}, {}
    for w in (1.0, 3.0):
        clips = gen.generate(len(labels), labels.tolist(), steps=50, seed=0, guidance_scale=w).numpy()
        probs, _ = clf.predict(clips)
        predicted[w] = probs.argmax(1).tolist()
        accuracy[w] = float(np.mean(probs.argmax(1) == labels))
    print(accuracy, predicted)
    assert accuracy[1.0] >= 0.75 and accuracy[3.0] >= 0.75, (accuracy, predicted)
