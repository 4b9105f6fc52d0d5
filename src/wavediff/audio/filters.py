"""Band limiting of waveforms."""
from __future__ import annotations

import numpy as np

from wavediff.errors import WavediffError


def check_cutoff(cutoff_hz: float, sample_rate: int) -> None:
    """Refuse a cutoff outside ``(0, sample_rate / 2)``."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise WavediffError(f"a cutoff of {cutoff_hz} Hz must lie strictly between 0 and the Nyquist frequency "
                            f"{sample_rate / 2:g} Hz of {sample_rate} Hz audio")


def low_pass(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """``audio (L,)`` with every frequency above ``cutoff_hz`` removed: an ideal (brick-wall)
    low-pass over the whole signal, done as one real FFT, the bins above the cutoff set to zero.
    Zero phase, so what is left is unchanged in time. Returns ``(L,)`` in ``audio``'s float dtype
    (float64 for integer input)."""
    check_cutoff(cutoff_hz, sample_rate)
    x = np.asarray(audio)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    spectrum = np.fft.rfft(x.astype(np.float64, copy=False))
    spectrum[np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate) > cutoff_hz] = 0.0
    return np.fft.irfft(spectrum, n=x.shape[-1]).astype(dtype, copy=False)
