"""Read and write audio files with soundfile; resample with soxr (through librosa)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from wavediff.errors import WavediffError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def load_audio(path: str | Path, sample_rate: int | None = None, *, resample: bool = True) -> np.ndarray:
    """Read an audio file as mono float32 in [-1, 1].

    Stereo (or more channels) is mixed to mono by averaging. With ``sample_rate`` given,
    audio at another rate is resampled (soxr, high quality) when ``resample`` is true and
    rejected otherwise.

    Returns:
        ``(L,)`` float32 array.
    Raises:
        WavediffError: missing, unreadable or empty file; non-finite samples; wrong rate
        with ``resample=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise WavediffError(f"audio file not found: {str(path)!r}")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise WavediffError(f"cannot read audio file {str(path)!r}: {exc}") from None
    if data.shape[0] == 0:
        raise WavediffError(f"audio file {str(path)!r} is empty (0 samples)")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise WavediffError(f"audio file {str(path)!r} contains NaN or Inf samples")
    if sample_rate is not None and file_rate != sample_rate:
        if not resample:
            raise WavediffError(
                f"audio file {str(path)!r} has sample rate {file_rate} Hz; expected {sample_rate} Hz "
                "(resample it, or pass --resample)"
            )
        audio = resample_audio(audio, file_rate, sample_rate)
        log.info("resampled %s from %d Hz to %d Hz", path, file_rate, sample_rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample_audio(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``(L,)`` audio with soxr's high-quality filter."""
    import librosa

    if orig_rate == target_rate:
        return audio
    return librosa.resample(audio, orig_sr=orig_rate, target_sr=target_rate, res_type="soxr_hq").astype(np.float32)


def audio_info(path: str | Path) -> tuple[int, int]:
    """Return ``(num_frames, sample_rate)`` without reading the samples."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise WavediffError(f"cannot read audio file {str(path)!r}: {exc}") from None
    return int(info.frames), int(info.samplerate)


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write ``(L,)`` float audio, clipped to [-1, 1], as 16-bit PCM (wav) or FLAC."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
    sf.write(str(path), audio, sample_rate, subtype="PCM_16")
