"""Vocoder training data: utterances, their mels, and frame-aligned random crops."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from wavediff.audio.io import load_audio
from wavediff.audio.mel import MelFrontend
from wavediff.data.manifest import AudioEntry
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)


class VocoderDataset:
    """Utterances held in memory with their mels, served as aligned crops.

    Each utterance is loaded (mono, resampled to the front-end's rate), zero-padded to at
    least one crop (short clips are padded, never dropped) and to a whole number of
    frames; its mel is computed once. With ``cache_dir`` the mels are also stored there
    (``<sha1>.npy``, keyed by file path, size, mtime and front-end), never beside the audio.

    A crop of ``crop_frames`` frames starting at frame ``f`` pairs
    ``mel[:, f:f + crop_frames]`` with ``audio[f * hop:(f + crop_frames) * hop]``.
    """

    def __init__(self, entries: list[AudioEntry], frontend: MelFrontend, crop_frames: int,
                 cache_dir: str | Path | None = None, progress: bool = False) -> None:
        if not entries:
            raise WavediffError("the dataset has no audio files")
        self.entries = entries
        self.frontend = frontend
        self.crop_frames = crop_frames
        self.hop = frontend.hop_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.audio: list[np.ndarray] = []
        self.mels: list[np.ndarray] = []
        iterator = entries
        if progress:
            from tqdm import tqdm

            iterator = tqdm(entries, desc="mels", unit="file", leave=False)
        for entry in iterator:
            audio, mel = self._load(entry)
            self.audio.append(audio)
            self.mels.append(mel)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def crop_samples(self) -> int:
        return self.crop_frames * self.hop

    def _cache_key(self, path: Path) -> str:
        st = path.stat()
        payload = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, asdict(self.frontend.config),
                              self.crop_frames])
        return hashlib.sha1(payload.encode()).hexdigest()

    def _load(self, entry: AudioEntry) -> tuple[np.ndarray, np.ndarray]:
        audio = load_audio(entry.path, self.frontend.sample_rate)
        if audio.shape[0] < self.crop_samples:
            audio = np.pad(audio, (0, self.crop_samples - audio.shape[0]))
        n_frames = self.frontend.num_frames(audio.shape[0])
        audio = np.pad(audio, (0, max(0, n_frames * self.hop - audio.shape[0])))[: n_frames * self.hop]
        cached = self.cache_dir / f"{self._cache_key(entry.path)}.npy" if self.cache_dir else None
        if cached is not None and cached.is_file():
            mel = np.load(cached, allow_pickle=False)
            if mel.shape[1] == n_frames:
                return audio, mel
        mel = self.frontend(torch.from_numpy(audio)).numpy()
        mel = mel[:, :n_frames]
        if cached is not None:
            fd, tmp = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, mel, allow_pickle=False)
            os.replace(tmp, cached)
        return audio, mel

    def crop(self, index: int, generator: torch.Generator | None = None,
             start_frame: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One crop: audio ``(crop_samples,)`` and mel ``(n_mels, crop_frames)``.

        The start frame is drawn from ``generator`` unless given.
        """
        mel = self.mels[index]
        n_frames = mel.shape[1]
        if n_frames < self.crop_frames:  # only for the final partial frame edge
            pad = self.crop_frames - n_frames
            mel = np.pad(mel, ((0, 0), (0, pad)), mode="edge")
            n_frames = self.crop_frames
        if start_frame is None:
            start_frame = int(torch.randint(0, n_frames - self.crop_frames + 1, (1,), generator=generator))
        start_frame = min(max(0, start_frame), n_frames - self.crop_frames)
        m = mel[:, start_frame:start_frame + self.crop_frames]
        a = self.audio[index][start_frame * self.hop:(start_frame + self.crop_frames) * self.hop]
        if a.shape[0] < self.crop_samples:
            a = np.pad(a, (0, self.crop_samples - a.shape[0]))
        return torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(m))

    def batch(self, indices: list[int], generator: torch.Generator | None = None,
              start_frames: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked crops: audio ``(B, crop_samples)`` and mel ``(B, n_mels, crop_frames)``."""
        pairs = [self.crop(i, generator, None if start_frames is None else start_frames[k])
                 for k, i in enumerate(indices)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class ClipDataset:
    """Whole clips for class-conditional or unconditional training, held in memory.

    Each clip is loaded mono at ``sample_rate`` (resampled if needed) and brought to
    ``clip_samples``: shorter clips are zero-padded at the end; longer ones are cropped at
    a random offset per draw (at their start for validation). ``labels`` holds each clip's
    class index, or is ``None`` for unlabelled data.
    """

    def __init__(self, entries: list[AudioEntry], sample_rate: int, clip_samples: int,
                 labels: list[int] | None = None, progress: bool = False) -> None:
        if not entries:
            raise WavediffError("the dataset has no audio files")
        if labels is not None and len(labels) != len(entries):
            raise WavediffError(f"{len(labels)} labels for {len(entries)} clips")
        self.entries = entries
        self.sample_rate = sample_rate
        self.clip_samples = clip_samples
        self.labels = labels
        iterator = entries
        if progress:
            from tqdm import tqdm

            iterator = tqdm(entries, desc="clips", unit="file", leave=False)
        self.audio: list[np.ndarray] = []
        for entry in iterator:
            audio = load_audio(entry.path, sample_rate)
            if audio.shape[0] < clip_samples:
                audio = np.pad(audio, (0, clip_samples - audio.shape[0]))
            self.audio.append(audio)

    def __len__(self) -> int:
        return len(self.entries)

    def clip(self, index: int, generator: torch.Generator | None = None, random_offset: bool = True) -> torch.Tensor:
        """``(clip_samples,)`` audio of clip ``index``."""
        audio = self.audio[index]
        spare = audio.shape[0] - self.clip_samples
        start = int(torch.randint(0, spare + 1, (1,), generator=generator)) if spare > 0 and random_offset else 0
        return torch.from_numpy(np.ascontiguousarray(audio[start:start + self.clip_samples]))

    def batch(self, indices: list[int], generator: torch.Generator | None = None,
              random_offset: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Audio ``(B, clip_samples)`` and labels ``(B,)`` (``None`` when unlabelled)."""
        audio = torch.stack([self.clip(i, generator, random_offset) for i in indices])
        labels = None if self.labels is None else torch.tensor([self.labels[i] for i in indices], dtype=torch.long)
        return audio, labels
