"""The brick-wall low-pass against sums of sinusoids, whose band-limited form is known exactly."""
from __future__ import annotations

import numpy as np
import pytest

from wavediff.audio.filters import low_pass
from wavediff.errors import WavediffError


def _tone(freq: float, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / sr + phase)


@pytest.mark.parametrize("n", [22050, 22051])
def test_tones_below_the_cutoff_stay_and_those_above_go(n):
    sr = 22050
    # at n = sr every tone makes whole cycles and sits on an FFT bin, 10 Hz either side of the
    # cutoff; one sample more and they leak, so there they stand 2 kHz and more from it
    edge = 10.0 if n == sr else 2000.0
    low = 0.5 * _tone(440.0, n, sr, 0.3) + 0.2 * _tone(8000.0 - edge, n, sr, 1.0)
    high = 0.3 * _tone(8000.0 + edge, n, sr, 2.0) + 0.1 * _tone(10500.0, n, sr)
    out = low_pass((low + high).astype(np.float32), sr, 8000.0)
    assert out.dtype == np.float32 and out.shape == (n,)
    if n == sr:
        np.testing.assert_allclose(out, low, atol=1e-5)
    else:
        residual = np.sqrt(np.mean((out - low) ** 2)) / np.sqrt(np.mean(high ** 2))
        assert residual < 0.02


def test_a_signal_already_band_limited_is_unchanged_and_integers_become_float64():
    sr = 16000
    x = 0.7 * _tone(1000.0, sr, sr) + 0.2 * _tone(3000.0, sr, sr, 0.5)
    np.testing.assert_allclose(low_pass(x, sr, 4000.0), x, atol=1e-10)
    assert low_pass(np.arange(8, dtype=np.int16), sr, 4000.0).dtype == np.float64


@pytest.mark.parametrize("cutoff", [0.0, -5.0, 8000.0, 9000.0])
def test_a_cutoff_outside_zero_to_nyquist_is_refused_with_the_allowed_range(cutoff):
    with pytest.raises(WavediffError, match=r"between 0 and the Nyquist frequency 8000 Hz"):
        low_pass(np.zeros(100), 16000, cutoff)
