"""Training data streamed from disk: aligned vocoder crops, or whole labelled clips.

Neither dataset holds the corpus in memory: an item is read from its file when asked for
(only the crop's samples, when the file is at the training rate), and a vocoder crop's mel
is sliced from a memory-mapped ``.npy`` in the mel cache. Both are map-style
``torch.utils.data.Dataset`` s keyed by ``(index, seed)`` pairs from
:class:`wavediff.data.sampling.StepSampler`, so they work in ``DataLoader`` workers; every
random choice of an item is drawn from a generator seeded by its ``seed``.

The mel cache (``<sha1>.npy`` keyed by file path, size, mtime, front-end and crop) is safe
with many processes and nodes writing to it at once: an entry is written to a unique
temporary file and renamed into place, so a reader sees either no entry or a whole one,
and an unreadable entry is recomputed.
"""
from __future__ import annotations

import abc
import copy
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from wavediff.audio.loudness import peak_gain
from wavediff.audio.mel import MelFrontend
from wavediff.data.inspection import FIXED, SKIPPED, AudioCheck, BadAudio, InputReport, read_training_audio
from wavediff.data.manifest import AudioEntry
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

Item = dict[str, torch.Tensor]


class _Streamed(Dataset, abc.ABC):
    """Shared parts: the file list, per-file lengths after screening, replacement on failure."""

    def __init__(self, entries: list[AudioEntry], sample_rate: int, peak_level: float | None = None) -> None:
        if not entries:
            raise WavediffError("the dataset has no audio files")
        if peak_level is not None and not 0 < peak_level <= 1:
            raise WavediffError(f"peak_level={peak_level} must lie in (0, 1] (or None: no normalisation)")
        self.entries = list(entries)
        self.sample_rate = sample_rate
        self.num_samples: list[int | None] = [None] * len(entries)
        self.peak_level = peak_level
        self.gains: list[float | None] = [None] * len(entries)

    def gain(self, index: int, audio: np.ndarray | None = None) -> float:
        """The factor utterance ``index`` is scaled by: ``peak_level / max |x|`` over the whole
        file (:func:`wavediff.audio.loudness.peak_gain`), 1 without normalisation. ``audio``:
        the whole utterance, if already read."""
        if self.peak_level is None:
            return 1.0
        g = self.gains[index]
        if g is None:
            if audio is None:
                audio, _ = read_training_audio(self.entries[index].path, self.sample_rate)
            g = self.gains[index] = peak_gain(audio, self.peak_level)
        return g

    def __len__(self) -> int:
        return len(self.entries)

    @abc.abstractmethod
    def check(self, index: int) -> AudioCheck:
        """Read file ``index`` whole once (and fill caches); raises :class:`BadAudio` if it must be skipped."""

    def set_lengths(self, num_samples: list[int]) -> None:
        """Lengths found by screening (see :meth:`check`), so items need not look them up again."""
        if len(num_samples) != len(self.entries):
            raise WavediffError(f"{len(num_samples)} lengths for {len(self.entries)} files")
        self.num_samples = list(num_samples)

    def keep(self, indices: list[int]) -> "_Streamed":
        """A copy of this dataset over the files ``indices`` (e.g. those that passed screening)."""
        out = copy.copy(self)
        out.entries = [self.entries[i] for i in indices]
        out.num_samples = [self.num_samples[i] for i in indices]
        out.gains = [self.gains[i] for i in indices]
        labels = getattr(self, "labels", None)
        if labels is not None:
            out.labels = [labels[i] for i in indices]  # type: ignore[attr-defined]
        if not out.entries:
            raise WavediffError("no usable audio files are left")
        return out

    @abc.abstractmethod
    def _item(self, index: int, generator: torch.Generator) -> Item:
        """The tensors of item ``index``, its random choices drawn from ``generator``."""

    def __getitem__(self, key: tuple[int, int]) -> Item:
        """The item for a ``(index, seed)`` pair; ``seed`` (int64) and ``replaced`` ride along.

        A file that fails here (it was screened as good, so it changed on disk) is logged and
        replaced by the next file that reads, with the same seed, so the batch keeps its size.
        """
        index, seed = key
        for attempt in range(len(self.entries)):
            i = (index + attempt) % len(self.entries)
            try:
                item = self._item(i, torch.Generator().manual_seed(seed))
            except BadAudio as exc:
                log.warning("replaced an item: %s", exc)
                continue
            item["seed"] = torch.tensor(seed, dtype=torch.int64)
            item["replaced"] = torch.tensor(attempt > 0, dtype=torch.bool)
            return item
        raise WavediffError(f"none of the {len(self.entries)} files of the dataset can be read any more")


class VocoderDataset(_Streamed):
    """Aligned crops for vocoder training: audio ``(crop_samples,)`` and mel ``(n_mels, crop_frames)``.

    Each utterance is taken mono at the front-end's rate, zero-padded to at least one crop
    and to a whole number of frames; a crop starting at frame ``f`` pairs
    ``mel[:, f:f + crop_frames]`` with ``audio[f * hop:(f + crop_frames) * hop]``. With a
    ``peak_level`` every utterance is first scaled to that peak (``data.normalize='peak'``),
    its mel computed from the scaled audio.
    """

    def __init__(self, entries: list[AudioEntry], frontend: MelFrontend, crop_frames: int,
                 cache_dir: str | Path | None = None, peak_level: float | None = None) -> None:
        super().__init__(entries, frontend.sample_rate, peak_level)
        self.frontend = frontend
        self.crop_frames = crop_frames
        self.hop = frontend.hop_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    @property
    def crop_samples(self) -> int:
        return self.crop_frames * self.hop

    def num_frames(self, index: int) -> int:
        """Mel frames of utterance ``index`` (after padding to at least one crop)."""
        n = self.num_samples[index]
        if n is None:
            n = self.check(index).num_samples
            self.num_samples[index] = n
        return self.frontend.num_frames(max(n, self.crop_samples))

    def audio(self, index: int) -> np.ndarray:
        """``(num_frames · hop,)`` the whole padded utterance."""
        audio, check = read_training_audio(self.entries[index].path, self.sample_rate, min_samples=self.crop_samples)
        self.num_samples[index] = check.num_samples
        return self._whole_frames(audio * np.float32(self.gain(index, audio)))

    def _whole_frames(self, audio: np.ndarray) -> np.ndarray:
        n_frames = self.frontend.num_frames(audio.shape[0])
        return np.pad(audio, (0, max(0, n_frames * self.hop - audio.shape[0])))[: n_frames * self.hop]

    def _cache_path(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        path = self.entries[index].path
        try:
            st = path.stat()
        except OSError as exc:
            raise BadAudio("unreadable", path, str(exc)) from None
        key = [str(path.resolve()), st.st_size, st.st_mtime_ns, asdict(self.frontend.config), self.crop_frames]
        if self.peak_level is not None:
            key.append({"peak_level": self.peak_level})
        payload = json.dumps(key)
        return self.cache_dir / f"{hashlib.sha1(payload.encode()).hexdigest()}.npy"

    def mel(self, index: int, mmap: bool = True) -> np.ndarray:
        """``(n_mels, num_frames)`` mel of utterance ``index``: from the cache (memory-mapped), or
        computed (and cached)."""
        cached = self._cache_path(index)
        mel = self._read_cache(cached, mmap)
        return mel if mel is not None else self._compute_mel(self.audio(index), cached)

    def _read_cache(self, cached: Path | None, mmap: bool) -> np.ndarray | None:
        if cached is None or not cached.is_file():
            return None
        try:
            mel = np.load(cached, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("mel cache entry %s is unreadable (%s); recomputing it", cached, exc)
            return None
        return mel if mel.ndim == 2 and mel.shape[0] == self.frontend.n_mels else None

    def _compute_mel(self, audio: np.ndarray, cached: Path | None) -> np.ndarray:
        """The mel of padded ``audio``, stored in the cache entry ``cached`` (atomically) if given."""
        n_frames = self.frontend.num_frames(audio.shape[0])
        mel = self.frontend(torch.from_numpy(audio)).numpy()[:, :n_frames]
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        if cached is not None:
            fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.stem}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, mel, allow_pickle=False)
                os.replace(tmp, cached)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return mel

    def check(self, index: int) -> AudioCheck:
        """Read the utterance whole (once) and compute its mel into the cache; the screening of one file."""
        audio, check = read_training_audio(self.entries[index].path, self.sample_rate,
                                           min_samples=self.crop_samples)
        self.num_samples[index] = check.num_samples
        gain = self.gain(index, audio)
        cached = self._cache_path(index)
        if self._read_cache(cached, mmap=True) is None:
            self._compute_mel(self._whole_frames(audio * np.float32(gain)), cached)
        return check

    def crop(self, index: int, generator: torch.Generator | None = None,
             start_frame: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One crop: audio ``(crop_samples,)`` and mel ``(n_mels, crop_frames)``; the start frame is
        drawn from ``generator`` unless given."""
        mel = self.mel(index)
        n_frames = mel.shape[1]
        if start_frame is None:
            start_frame = int(torch.randint(0, max(1, n_frames - self.crop_frames + 1), (1,), generator=generator))
        start_frame = min(max(0, start_frame), max(0, n_frames - self.crop_frames))
        m = np.array(mel[:, start_frame:start_frame + self.crop_frames], dtype=np.float32)
        if m.shape[1] < self.crop_frames:
            m = np.pad(m, ((0, 0), (0, self.crop_frames - m.shape[1])), mode="edge")
        start = start_frame * self.hop
        a, _ = read_training_audio(self.entries[index].path, self.sample_rate, start=start,
                                   stop=start + self.crop_samples)
        if self.peak_level is not None:
            a = a * np.float32(self.gain(index))
        return torch.from_numpy(a), torch.from_numpy(m)

    def _item(self, index: int, generator: torch.Generator) -> Item:
        audio, mel = self.crop(index, generator)
        return {"audio": audio, "mel": mel}

    def batch(self, indices: list[int], generator: torch.Generator | None = None,
              start_frames: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked crops: audio ``(B, crop_samples)`` and mel ``(B, n_mels, crop_frames)``."""
        pairs = [self.crop(i, generator, None if start_frames is None else start_frames[k])
                 for k, i in enumerate(indices)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


class ClipDataset(_Streamed):
    """Whole clips for class-conditional or unconditional training (and the classifier).

    Each clip is read mono at ``sample_rate`` and brought to ``clip_samples``: shorter clips
    are zero-padded at the end; longer ones are cropped at an offset drawn per item (at their
    start when ``random_offset`` is false). ``labels`` holds each clip's class index, or is
    ``None`` for unlabelled data.
    """

    def __init__(self, entries: list[AudioEntry], sample_rate: int, clip_samples: int,
                 labels: list[int] | None = None, peak_level: float | None = None) -> None:
        super().__init__(entries, sample_rate, peak_level)
        if labels is not None and len(labels) != len(entries):
            raise WavediffError(f"{len(labels)} labels for {len(entries)} clips")
        self.clip_samples = clip_samples
        self.labels = labels

    def check(self, index: int) -> AudioCheck:
        audio, check = read_training_audio(self.entries[index].path, self.sample_rate, min_samples=self.clip_samples)
        self.num_samples[index] = check.num_samples
        self.gain(index, audio)
        return check

    def clip(self, index: int, generator: torch.Generator | None = None, random_offset: bool = True) -> torch.Tensor:
        """``(clip_samples,)`` audio of clip ``index``."""
        n = self.num_samples[index]
        if n is None:
            n = self.check(index).num_samples
        spare = n - self.clip_samples
        start = int(torch.randint(0, spare + 1, (1,), generator=generator)) if spare > 0 and random_offset else 0
        audio, _ = read_training_audio(self.entries[index].path, self.sample_rate, start=start,
                                       stop=start + self.clip_samples)
        if self.peak_level is not None:
            audio = audio * np.float32(self.gain(index))
        return torch.from_numpy(audio)

    def _item(self, index: int, generator: torch.Generator) -> Item:
        item: Item = {"audio": self.clip(index, generator)}
        if self.labels is not None:
            item["label"] = torch.tensor(self.labels[index], dtype=torch.long)
        return item

    def batch(self, indices: list[int], generator: torch.Generator | None = None,
              random_offset: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Audio ``(B, clip_samples)`` and labels ``(B,)`` (``None`` when unlabelled)."""
        audio = torch.stack([self.clip(i, generator, random_offset) for i in indices])
        labels = None if self.labels is None else torch.tensor([self.labels[i] for i in indices], dtype=torch.long)
        return audio, labels



def screen(dataset: _Streamed, report: InputReport, *, rank: int = 0, world_size: int = 1,
           sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = False,
           min_samples: int = 0) -> list[int]:
    """Read every file once, log and count what is wrong, and return the indices of usable files.

    Rank ``r`` of ``world_size`` reads files ``r, r + W, …`` (filling the mel cache of a
    vocoder dataset as it goes) and logs their problems; ``sum_over_ranks`` (an all-reduce)
    then gives every rank the outcome for all files, which is counted in ``report`` and
    stored as the dataset's lengths.
    """
    n = len(dataset)
    codes = torch.zeros(n, 3, dtype=torch.int64)  # status (1 ok, 2+k skipped kind k), samples, fix bits
    mine = range(rank, n, world_size)
    iterator: Any = mine
    if progress:
        from tqdm import tqdm

        iterator = tqdm(mine, desc="checking audio", unit="file", leave=False)
    local = InputReport()
    for i in iterator:
        path = dataset.entries[i].path
        try:
            check = dataset.check(i)
        except BadAudio as exc:
            codes[i, 0] = 2 + SKIPPED.index(exc.kind)
            local.note(exc.kind, path, exc.detail)
            continue
        codes[i, 0], codes[i, 1] = 1, check.num_samples
        for k, kind in enumerate(FIXED):
            if kind in check.fixes:
                codes[i, 2] |= 1 << k
                local.note(kind, path, check.describe(kind, dataset.sample_rate, min_samples))
    if sum_over_ranks is not None:
        codes = sum_over_ranks(codes).to(torch.int64)
    usable = [i for i in range(n) if int(codes[i, 0]) == 1]
    for i in range(n):
        status, bits = int(codes[i, 0]), int(codes[i, 2])
        if status >= 2:
            report.add(SKIPPED[status - 2])
        for k, kind in enumerate(FIXED):
            if bits >> k & 1:
                report.add(kind)
    dataset.set_lengths([int(codes[i, 1]) for i in range(n)])
    return usable
