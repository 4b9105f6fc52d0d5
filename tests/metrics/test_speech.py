"""wavediff.metrics.speech: speech metrics on known cases: identity, noisier and delayed copies,
pure tones, closed forms."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wavediff.metrics.speech import (MCD_CONSTANT, SpeechScorer, all_pass_alpha, f0_rmse_cents, f0_track,
    mel_cepstral_distortion, pesq_wb, stoi, vuv_f1, warp_frequency, warped_cepstrum)

from helpers import SR, tone_sweep


pytest.importorskip("pesq")
pytest.importorskip("pystoi")
pytest.importorskip("parselmouth")


@pytest.fixture(scope="module")
def speechlike() -> np.ndarray:
    """2 s of voiced-like audio with pauses (amplitude-modulated harmonics)."""
    return tone_sweep(2.0, seed=3).astype(np.float64)


def noisy(x: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    return x + level * np.random.default_rng(seed).standard_normal(x.shape)


def test_identical_signals_score_perfectly(speechlike):
    scores = SpeechScorer(speechlike, SR).score(speechlike)
    assert scores["mcd"] == pytest.approx(0.0, abs=1e-9)
    assert scores["pesq_wb"] > 4.5  # P.862.2 tops out at 4.64
    assert scores["stoi"] == pytest.approx(1.0, abs=1e-6)
    assert scores["f0_rmse_cents"] == pytest.approx(0.0, abs=1e-9)
    assert scores["vuv_f1"] == pytest.approx(1.0)


def test_more_noise_scores_worse(speechlike):
    scorer = SpeechScorer(speechlike, SR)
    light, heavy = scorer.score(noisy(speechlike, 0.003)), scorer.score(noisy(speechlike, 0.05))
    assert 0 < light["mcd"] < heavy["mcd"]
    assert light["pesq_wb"] > heavy["pesq_wb"]
    assert light["stoi"] > heavy["stoi"]
    assert light["vuv_f1"] >= heavy["vuv_f1"]


def test_a_delayed_copy_scores_worse_and_dtw_realigns_it(speechlike):
    delayed = np.concatenate([np.zeros(int(0.03 * SR)), speechlike])[: speechlike.shape[0]]
    assert stoi(speechlike, delayed, SR) < 0.9
    plain = mel_cepstral_distortion(speechlike, delayed, SR)
    assert plain > 0.5
    assert mel_cepstral_distortion(speechlike, delayed, SR, use_dtw=True) < plain / 2
    assert pesq_wb(speechlike, speechlike, SR) > pesq_wb(speechlike, noisy(speechlike, 0.01), SR)


def test_mcd_ignores_gain_because_c0_is_left_out(speechlike):
    # A gain g adds ln g to every log amplitude: only c0 moves (up to the floor, far below this signal).
    assert mel_cepstral_distortion(speechlike, 0.5 * speechlike, SR) < 1e-6


def test_warped_cepstrum_recovers_a_known_mel_cepstrum():
    alpha, order = 0.455, 24
    rng = np.random.default_rng(0)
    true = rng.normal(0, 0.3, order + 1) / (1 + np.arange(order + 1))
    omega = np.linspace(0, np.pi, 513)
    warped = warp_frequency(omega, alpha)
    log_amp = true[0] + 2 * sum(true[m] * np.cos(m * warped) for m in range(1, order + 1))
    found = warped_cepstrum(log_amp[None], order, alpha)[0]
    np.testing.assert_allclose(found, true, atol=2e-3)


def test_mcd_closed_form_for_one_coefficient():
    # Two spectra differing only in c1 by d: MCD = 10/ln10 * sqrt(2) * |d|.
    omega = np.linspace(0, np.pi, 513)
    d = 0.05
    a = warped_cepstrum(np.zeros((1, 513)), 24, 0.455)
    b = warped_cepstrum((2 * d * np.cos(warp_frequency(omega, 0.455)))[None], 24, 0.455)
    distance = MCD_CONSTANT * np.sqrt(np.sum((a[:, 1:] - b[:, 1:]) ** 2))
    assert distance == pytest.approx(10 / math.log(10) * math.sqrt(2) * d, rel=0.02)


@pytest.mark.parametrize("rate, sptk", [(8000, 0.31), (16000, 0.42), (22050, 0.455), (44100, 0.544), (48000, 0.554)])
def test_all_pass_alpha_matches_sptk_table(rate, sptk):
    assert all_pass_alpha(rate) == pytest.approx(sptk, abs=0.011)


@pytest.mark.parametrize("freq", [110.0, 220.0, 440.0])
def test_a_pure_tone_f0_is_found_within_a_few_cents(freq):
    t = np.arange(SR) / SR
    track = f0_track(0.5 * np.sin(2 * np.pi * freq * t), SR)
    voiced = track[track > 0]
    assert voiced.shape[0] > 0.8 * track.shape[0]
    assert np.max(np.abs(1200 * np.log2(voiced / freq))) < 3.0


def test_f0_rmse_of_a_semitone_is_100_cents():
    t = np.arange(SR) / SR
    ref = f0_track(0.5 * np.sin(2 * np.pi * 220 * t), SR)
    est = f0_track(0.5 * np.sin(2 * np.pi * 220 * 2 ** (1 / 12) * t), SR)
    assert f0_rmse_cents(ref, est) == pytest.approx(100.0, abs=3.0)


def test_silence_is_unvoiced_and_f0_metrics_handle_it():
    assert np.all(f0_track(np.zeros(SR // 2), SR) == 0)
    assert math.isnan(f0_rmse_cents(np.zeros(10), np.full(10, 100.0)))
    assert math.isnan(vuv_f1(np.zeros(10), np.full(10, 100.0)))


def test_vuv_f1_closed_form():
    ref = np.array([100, 100, 100, 100, 0, 0, 0, 0], dtype=float)
    est = np.array([100, 100, 0, 0, 100, 0, 0, 0], dtype=float)
    # tp=2, fp=1, fn=2 -> F1 = 4 / 7
    assert vuv_f1(ref, est) == pytest.approx(4 / 7)


def test_pesq_on_silence_is_nan_not_a_crash():
    assert math.isnan(pesq_wb(np.zeros(SR), np.zeros(SR), SR))
