"""A trained audio classifier with its front-end: ``p(y|x)`` and features for the metrics.

Saved as a folder: ``classifier.safetensors`` (weights) and ``classifier.json`` (network
shape, mel front-end, class names, clip length, how it was trained and its test
accuracy). Nothing is unpickled.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from wavediff.audio.mel import MelFrontend
from wavediff.config import MelConfig
from wavediff.errors import WavediffError
from wavediff.models.resnext_classifier import ClassifierConfig, SpectrogramClassifier

log = logging.getLogger(__name__)

WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"
FORMAT_VERSION = 1


class AudioClassifier:
    """:class:`SpectrogramClassifier` plus the log-mel front-end and clip length it was trained on.

    Audio of another length is zero-padded or cut to ``clip_samples`` (at its end) first.
    """

    def __init__(self, model: SpectrogramClassifier, mel: MelConfig, class_names: Sequence[str], clip_samples: int,
                 info: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> None:
        if len(class_names) != model.config.num_classes:
            raise WavediffError(f"{len(class_names)} class names for a {model.config.num_classes}-class classifier")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.mel_config = mel
        self.frontend = MelFrontend(mel, device=self.device)
        self.class_names = tuple(class_names)
        self.clip_samples = clip_samples
        self.info = dict(info or {})

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    def save(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()},
                  str(out / WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
        meta = {"format_version": FORMAT_VERSION, "classifier": self.model.config.to_dict(),
                "mel": dataclasses.asdict(self.mel_config), "class_names": list(self.class_names),
                "clip_samples": self.clip_samples, "info": self.info}
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "AudioClassifier":
        folder = Path(folder)
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise WavediffError(f"{str(folder)!r} is not a classifier folder: expected {CONFIG_FILE} and {WEIGHTS_FILE} "
                                "(train one with `wavediff train-classifier`)")
        try:
            meta = json.loads(cfg_path.read_text())
            if meta.get("format_version") != FORMAT_VERSION:
                raise WavediffError(f"classifier format_version={meta.get('format_version')!r} is not supported; "
                                    f"this wavediff reads {FORMAT_VERSION}")
            model = SpectrogramClassifier(ClassifierConfig(**meta["classifier"]))
            mel = MelConfig(**meta["mel"])
            weights = load_file(str(w_path))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise WavediffError(f"cannot read classifier {str(folder)!r}: {exc}") from None
        expected = model.state_dict()
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise WavediffError(f"classifier {str(folder)!r}: weights do not match its config "
                                f"(missing {missing[:3]}, unexpected {extra[:3]})")
        for key, tensor in expected.items():
            if tuple(weights[key].shape) != tuple(tensor.shape):
                raise WavediffError(f"classifier {str(folder)!r}: weights do not match its config: {key} has shape "
                                    f"{tuple(weights[key].shape)}, the config needs {tuple(tensor.shape)}")
        model.load_state_dict(weights)
        return cls(model, mel, meta["class_names"], int(meta["clip_samples"]), meta.get("info"), device)

    def fit_length(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` -> ``(B, clip_samples)``: zero-padded or cut at the end."""
        n = audio.shape[-1]
        if n < self.clip_samples:
            return torch.nn.functional.pad(audio, (0, self.clip_samples - n))
        return audio[..., :self.clip_samples]

    def logmel(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` audio -> ``(B, n_mels, F)`` classifier input."""
        return self.frontend(self.fit_length(audio.to(self.device, torch.float32)))

    @torch.no_grad()
    def predict(self, audio: torch.Tensor | np.ndarray | Sequence[np.ndarray],
                batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``(N, K)`` and penultimate features ``(N, D)`` of ``N`` clips
        (a ``(N, L)`` array or a list of ``(L_i,)`` arrays)."""
        clips = [torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in audio]
        if not clips:
            raise WavediffError("no clips to classify")
        probs, feats = [], []
        for b0 in range(0, len(clips), batch_size):
            batch = torch.stack([self.fit_length(c) for c in clips[b0:b0 + batch_size]])
            f = self.model.features(self.logmel(batch))
            probs.append(torch.softmax(self.model.head(f), dim=-1).double().cpu().numpy())
            feats.append(f.double().cpu().numpy())
        return np.concatenate(probs), np.concatenate(feats)
