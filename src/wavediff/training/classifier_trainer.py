"""Training the metrics' digit classifier (``wavediff train-classifier``).

Labelled clips (see :mod:`wavediff.data.labels`) -> :class:`~wavediff.metrics.audio_classifier.AudioClassifier`.
AdamW with a one-cycle learning rate; each batch is augmented by a random time shift
(up to ``max_shift_seconds``, zero-filled) and gain (up to +-``max_gain_db``). The model of
the last epoch is kept (the test set is only reported, never used to choose).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wavediff.config import MEL_PRESETS
from wavediff.data.datasets import ClipDataset
from wavediff.data.labels import class_order, label_index, read_labelled_entries
from wavediff.errors import WavediffError
from wavediff.metrics.audio_classifier import AudioClassifier
from wavediff.models.resnext_classifier import ClassifierConfig, SpectrogramClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierTraining:
    """Settings of :func:`train_classifier`."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    max_shift_seconds: float = 0.1
    max_gain_db: float = 6.0
    seed: int = 0
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    width: int = 32

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "sample_rate", "width"):
            if getattr(self, name) < 1:
                raise WavediffError(f"classifier {name}={getattr(self, name)} must be >= 1")
        if not self.clip_seconds > 0 or not self.learning_rate > 0:
            raise WavediffError("classifier clip_seconds and learning_rate must be > 0")


def _labelled_clips(source: str | Path, settings: ClassifierTraining,
                    class_names: tuple[str, ...] | None) -> tuple[ClipDataset, tuple[str, ...]]:
    entries = read_labelled_entries(source)
    unlabelled = [e.path for e in entries if e.label is None]
    if unlabelled:
        raise WavediffError(f"{len(unlabelled)} clips in {str(source)!r} have no label (first: {str(unlabelled[0])!r})")
    names = class_names or class_order([str(e.label) for e in entries])
    labels = [label_index(str(e.label), names) for e in entries]
    clip = int(round(settings.clip_seconds * settings.sample_rate))
    return ClipDataset(entries, settings.sample_rate, clip, labels), names


def _augment(audio: torch.Tensor, settings: ClassifierTraining, g: torch.Generator, sample_rate: int) -> torch.Tensor:
    """Random shift (zero-filled) and gain per clip. ``(B, L) -> (B, L)``."""
    out = torch.zeros_like(audio)
    max_shift = int(settings.max_shift_seconds * sample_rate)
    shifts = torch.randint(-max_shift, max_shift + 1, (audio.shape[0],), generator=g).tolist()
    n = audio.shape[1]
    for i, s in enumerate(shifts):
        if s >= 0:
            out[i, s:] = audio[i, :n - s]
        else:
            out[i, :n + s] = audio[i, -s:]
    gain_db = (torch.rand(audio.shape[0], 1, generator=g) * 2 - 1) * settings.max_gain_db
    return out * 10 ** (gain_db / 20)


def accuracy(classifier: AudioClassifier, dataset: ClipDataset) -> float:
    """Share of ``dataset``'s clips whose most probable class is their label."""
    assert dataset.labels is not None
    probs, _ = classifier.predict([dataset.clip(i, random_offset=False).numpy() for i in range(len(dataset))])
    return float(np.mean(probs.argmax(1) == np.asarray(dataset.labels)))


def train_classifier(train_source: str | Path, test_source: str | Path | None, out_dir: str | Path, *,
                     settings: ClassifierTraining = ClassifierTraining(), device: str | torch.device = "cpu",
                     max_minutes: float | None = None, progress: bool = True) -> AudioClassifier:
    """Train on ``train_source``, report accuracy on ``test_source``, save to ``out_dir``."""
    torch.manual_seed(settings.seed)
    g = torch.Generator().manual_seed(settings.seed)
    mel = MEL_PRESETS["audioldm"]
    if mel.sample_rate != settings.sample_rate:
        from dataclasses import replace
        mel = replace(mel, sample_rate=settings.sample_rate, f_max=settings.sample_rate / 2)
    train_set, names = _labelled_clips(train_source, settings, None)
    test_set = _labelled_clips(test_source, settings, names)[0] if test_source is not None else None
    model = SpectrogramClassifier(ClassifierConfig(num_classes=len(names), n_mels=mel.n_mels, width=settings.width))
    classifier = AudioClassifier(model, mel, names, train_set.clip_samples, device=device)
    log.info("classifier: %d classes %s, %d training clips, %d parameters", len(names), list(names), len(train_set),
             sum(p.numel() for p in model.parameters()))
    per_epoch = math.ceil(len(train_set) / settings.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.learning_rate,
                                                    total_steps=settings.epochs * per_epoch)
    labels = torch.tensor(train_set.labels)
    started = time.monotonic()
    epochs_done = 0
    for epoch in range(settings.epochs):
        if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
            log.info("classifier: time budget reached after %d epochs", epoch)
            break
        model.train()
        order = torch.randperm(len(train_set), generator=g)
        total, correct = 0.0, 0
        for b in range(per_epoch):
            idx = order[b * settings.batch_size:(b + 1) * settings.batch_size].tolist()
            audio, _ = train_set.batch(idx, g)
            audio = _augment(audio, settings, g, mel.sample_rate)
            logits = model(classifier.logmel(audio))
            y = labels[idx].to(classifier.device)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        epochs_done = epoch + 1
        model.eval()
        msg = f"epoch {epoch + 1}/{settings.epochs}: loss {total / len(train_set):.4f}, " \
              f"train accuracy {correct / len(train_set):.4f}"
        if test_set is not None and (epoch + 1 == settings.epochs or (epoch + 1) % 5 == 0):
            msg += f", test accuracy {accuracy(classifier, test_set):.4f}"
        log.info("classifier %s", msg)
    model.eval()
    info = {"train_data": str(train_source), "epochs": epochs_done, "minutes": (time.monotonic() - started) / 60,
            "settings": settings.__dict__, "train_clips": len(train_set)}
    if test_set is not None:
        info["test_data"] = str(test_source)
        info["test_accuracy"] = accuracy(classifier, test_set)
        info["test_clips"] = len(test_set)
        log.info("classifier test accuracy %.4f on %d clips", info["test_accuracy"], len(test_set))
    classifier.info = info
    classifier.save(out_dir)
    return classifier
