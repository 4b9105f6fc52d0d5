"""wavediff.metrics.spectral: log-mel L1 and multi-resolution STFT distances: zero for identical
signals, growing with noise, and the closed form for a scaled copy."""
from __future__ import annotations

import numpy as np

from wavediff.audio.mel import MelFrontend
from wavediff.config import MEL_PRESETS
from wavediff.metrics import log_mel_l1, multi_resolution_stft_distance

from helpers import tone_sweep


def test_identical_signals_score_zero_and_noise_scores_worse():
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    x = tone_sweep(1.0)
    rng = np.random.default_rng(0)
    slightly = x + 0.003 * rng.standard_normal(x.shape).astype(np.float32)
    very = x + 0.05 * rng.standard_normal(x.shape).astype(np.float32)
    assert log_mel_l1(x, x, fe) == 0.0
    assert multi_resolution_stft_distance(x, x) == 0.0
    assert 0 < log_mel_l1(x, slightly, fe) < log_mel_l1(x, very, fe)
    assert 0 < multi_resolution_stft_distance(x, slightly) < multi_resolution_stft_distance(x, very)


def test_mr_stft_spectral_convergence_of_a_scaled_copy():
    """For y = a x, SC = |1 - a| and the log-magnitude term is |ln a| at every bin, exactly."""
    x = tone_sweep(0.5)
    a = 0.5
    expected = abs(1 - a) + abs(np.log(a))
    assert abs(multi_resolution_stft_distance(x, a * x) - expected) < 0.02  # the 1e-7 floor on silent bins
