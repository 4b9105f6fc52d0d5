"""Reading training audio that may be bad, and counting what was wrong with it.

Training must not crash on, nor silently learn from, a bad file. Each kind of problem is
either **skipped** (the file is left out of training) or **fixed** (the file is used after
a repair); either way it gets one log line and a count in the summary logged at the end of
every epoch.

=============  =======  =====================================================
kind           action   what
=============  =======  =====================================================
unreadable     skipped  missing, not audio, truncated or corrupt
empty          skipped  no samples
non-finite     skipped  NaN or Inf samples
resampled      fixed    another sample rate: resampled (soxr HQ) on every read
stereo         fixed    several channels: averaged to mono
short          fixed    shorter than a training crop / clip: zero-padded
replaced       fixed    could not be read *during* training (changed on disk):
                        the next usable item took its place in the batch
=============  =======  =====================================================
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from wavediff.audio.io import resample_audio
from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

SKIPPED = ("unreadable", "empty", "non-finite")
FIXED = ("resampled", "stereo", "short", "replaced")
KINDS = SKIPPED + FIXED
LOGGED_PER_KIND = 10
PLAUSIBLE_RATES = (1_000, 768_000)


class BadAudio(WavediffError):
    """A training file that has to be skipped; ``kind`` is one of :data:`SKIPPED`."""

    def __init__(self, kind: str, path: Path, detail: str) -> None:
        if kind not in SKIPPED:
            raise ValueError(f"kind={kind!r} is not allowed; choose one of {list(SKIPPED)}")
        super().__init__(f"{kind} audio file {str(path)!r}: {detail}")
        self.kind = kind
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class AudioCheck:
    """What reading a file found: its length at the training rate (before padding) and the fixes applied."""

    num_samples: int
    fixes: frozenset[str] = frozenset()
    file_rate: int = 0
    channels: int = 1

    def describe(self, kind: str, sample_rate: int, min_samples: int) -> str:
        """One line on how a fix of ``kind`` was applied to this file."""
        if kind == "resampled":
            return f"{self.file_rate} Hz resampled to {sample_rate} Hz"
        if kind == "stereo":
            return f"{self.channels} channels averaged to mono"
        if kind == "short":
            return f"{self.num_samples} samples zero-padded to {min_samples}"
        return kind


def _info(path: Path) -> sf._SoundFileInfo:
    try:
        exists = path.is_file()
    except (OSError, ValueError) as exc:  # a name the OS cannot look up: NUL bytes, too long
        raise BadAudio("unreadable", path, f"bad file name: {exc}") from None
    if not exists:
        raise BadAudio("unreadable", path, "no such file")
    try:
        return sf.info(str(path))
    except Exception as exc:  # libsndfile raises its own error types, and RuntimeError/TypeError on odd headers
        raise BadAudio("unreadable", path, str(exc).strip() or type(exc).__name__) from None


def read_training_audio(path: str | Path, sample_rate: int, *, start: int = 0, stop: int | None = None,
                        min_samples: int = 0) -> tuple[np.ndarray, AudioCheck]:
    """Samples ``[start, stop)`` of a file as mono float32 at ``sample_rate``, repaired or refused.

    Multi-channel audio is averaged to mono; another sample rate is resampled (the whole file
    is read then); the result is zero-padded to ``stop - start`` samples (when ``stop`` is
    given) or to ``min_samples``. At the file's own rate only the asked-for samples are read.

    Returns:
        ``(audio (L,), check)``; ``check.num_samples`` is the whole file's length at ``sample_rate``.
    Raises:
        BadAudio: unreadable, empty or non-finite audio.
    """
    path = Path(path)
    info = _info(path)
    fixes: set[str] = set()
    if info.channels > 1:
        fixes.add("stereo")
    if info.frames <= 0:
        raise BadAudio("empty", path, f"{info.frames} samples")
    if not PLAUSIBLE_RATES[0] <= info.samplerate <= PLAUSIBLE_RATES[1]:
        raise BadAudio("unreadable", path, f"the header's sample rate {info.samplerate} Hz is outside "
                                           f"[{PLAUSIBLE_RATES[0]}, {PLAUSIBLE_RATES[1]}] Hz")
    same_rate = info.samplerate == sample_rate
    total = info.frames if same_rate else int(round(info.frames * sample_rate / info.samplerate))
    try:
        if same_rate:
            first = min(max(0, start), info.frames)
            last = info.frames if stop is None else min(max(first, stop), info.frames)
            data, _ = sf.read(str(path), start=first, stop=last, dtype="float32", always_2d=True)
        else:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BadAudio("unreadable", path, str(exc).strip() or type(exc).__name__) from None
    asked_for_none = same_rate and (stop is not None and stop <= start or start >= info.frames)
    if data.shape[0] == 0 and not asked_for_none:
        raise BadAudio("unreadable", path, f"the header says {info.frames} samples but none could be read")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise BadAudio("non-finite", path, f"{bad} NaN or Inf sample(s)")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not same_rate:
        fixes.add("resampled")
        try:
            audio = resample_audio(np.ascontiguousarray(audio), info.samplerate, sample_rate)
        except (ValueError, RuntimeError, MemoryError) as exc:
            raise BadAudio("unreadable", path, f"cannot resample from {info.samplerate} Hz: {exc}") from None
        total = audio.shape[0]
        audio = audio[max(0, start):stop]
    want = (stop - start) if stop is not None else max(min_samples, audio.shape[0])
    if total < min_samples:
        fixes.add("short")
    if audio.shape[0] < want:
        audio = np.pad(audio, (0, want - audio.shape[0]))
    return np.ascontiguousarray(audio[:want] if stop is not None else audio, dtype=np.float32), \
        AudioCheck(total, frozenset(fixes), int(info.samplerate), int(info.channels))


@dataclass
class InputReport:
    """Counts of bad inputs by kind, logging each occurrence once.

    The first :data:`LOGGED_PER_KIND` files of a kind are logged at WARNING, the rest at
    DEBUG; :meth:`summary` gives the counts in one line.
    """

    counts: Counter[str] = field(default_factory=Counter)
    logged: Counter[str] = field(default_factory=Counter)

    def note(self, kind: str, path: Path | str, detail: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; choose one of {list(KINDS)}")
        self.counts[kind] += 1
        action = "skipped" if kind in SKIPPED else "fixed"
        level = logging.WARNING if self.logged[kind] < LOGGED_PER_KIND else logging.DEBUG
        self.logged[kind] += 1
        suffix = " (further files of this kind are logged at DEBUG level)" if self.logged[kind] == LOGGED_PER_KIND else ""
        log.log(level, "%s %s audio %s: %s%s", action, kind, path, detail, suffix)

    def add(self, kind: str, count: int = 1) -> None:
        """Count ``count`` occurrences that were logged elsewhere (e.g. in a DataLoader worker)."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; choose one of {list(KINDS)}")
        if count:
            self.counts[kind] += count

    @property
    def skipped(self) -> int:
        return sum(self.counts[k] for k in SKIPPED)

    def summary(self) -> str:
        skipped = ", ".join(f"{self.counts[k]} {k}" for k in SKIPPED if self.counts[k]) or "none"
        fixed = ", ".join(f"{self.counts[k]} {k}" for k in FIXED if self.counts[k]) or "none"
        return f"bad inputs skipped: {skipped}; fixed: {fixed}"
