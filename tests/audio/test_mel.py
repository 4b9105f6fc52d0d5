"""wavediff.audio.mel: the torch mel front-end against librosa and closed-form filterbank properties.
Tolerances: compressed mels agree with an independent librosa/numpy pipeline to 1e-4 (dB-normalised,
values in [0, 1]) and 2e-3 (natural log, which magnifies float32 error near the 1e-5 floor);
filterbank centres agree with the closed-form mel scale to 1 FFT bin."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from wavediff.audio.mel import MelFrontend, mel_config_from_preset, mel_filterbank
from wavediff.config import MEL_PRESETS
from wavediff.errors import WavediffError

from helpers import tone_sweep


def htk_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def htk_hz(m):
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


def reference_mel(audio: np.ndarray, name: str) -> np.ndarray:
    """Independent numpy/librosa implementation of each preset's published recipe."""
    c = MEL_PRESETS[name]
    window = np.hanning(c.win_length + 1)[:-1]  # periodic Hann
    if c.padding == "center":
        spec = librosa.stft(audio.astype(np.float64), n_fft=c.n_fft, hop_length=c.hop_length,
                            win_length=c.win_length, window=window, center=True, pad_mode="reflect")
    else:
        pad = (c.n_fft - c.hop_length) // 2
        padded = np.pad(audio.astype(np.float64), (pad, pad), mode="reflect")
        spec = librosa.stft(padded, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                            window=window, center=False)
    mag = np.sqrt(np.abs(spec) ** 2 + c.magnitude_eps)
    if c.stft_normalized:
        mag = mag / np.sqrt(np.sum(window ** 2))
    fb = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min,
                             fmax=c.max_frequency, htk=c.mel_scale == "htk",
                             norm="slaney" if c.mel_norm == "slaney" else None)
    mel = fb @ mag
    if c.compression == "log":
        return np.log(np.maximum(mel, c.log_floor))
    db = 20 * np.log10(np.maximum(mel, 1e-5)) - 20
    return np.clip((db + 100) / 100, 0, 1)


def test_diffwave_filterbank_peaks_at_htk_centres():
    cfg = MEL_PRESETS["diffwave"]
    fb = mel_filterbank(cfg)
    assert fb.shape == (80, 513)
    edges = htk_hz(np.linspace(htk_mel(20.0), htk_mel(cfg.sample_rate / 2), 82))
    bin_hz = cfg.sample_rate / cfg.n_fft
    peaks = fb.argmax(axis=1) * bin_hz
    # each triangle peaks at its centre frequency, up to one FFT bin
    assert np.all(np.abs(peaks - edges[1:-1]) <= bin_hz)
    assert fb.max() <= 1.0 + 1e-6  # HTK triangles without normalisation reach at most 1


def test_slaney_filterbank_is_area_normalised():
    cfg = MEL_PRESETS["hifigan"]
    fb = mel_filterbank(cfg)
    freqs = np.linspace(0, cfg.sample_rate / 2, 513)
    # slaney norm: each triangle's height is 2 / (f_hi - f_lo), so its area is ~1 (in Hz units)
    areas = fb.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas[10:], 1.0, rtol=0.08)
    assert freqs[np.nonzero(fb.sum(axis=0))[0].max()] <= 8000 + freqs[1]  # nothing above f_max


@pytest.mark.parametrize("name, atol", [("diffwave", 1e-4), ("hifigan", 2e-3), ("audioldm", 2e-3)])
def test_mel_matches_librosa_reference(name, atol):
    cfg = MEL_PRESETS[name]
    audio = tone_sweep(0.7, sr=cfg.sample_rate)
    mine = MelFrontend(cfg)(torch.from_numpy(audio)).numpy()
    ref = reference_mel(audio, name)
    assert mine.shape == ref.shape == (cfg.n_mels, MelFrontend(cfg).num_frames(audio.shape[0]))
    np.testing.assert_allclose(mine, ref, atol=atol)


def test_frame_counts_follow_the_padding_convention():
    assert MelFrontend(MEL_PRESETS["diffwave"]).num_frames(256 * 10) == 11
    assert MelFrontend(MEL_PRESETS["hifigan"]).num_frames(256 * 10) == 10
    assert MelFrontend(MEL_PRESETS["audioldm"]).num_frames(16000) == 100


def test_batched_equals_single_and_is_deterministic():
    fe = MelFrontend(MEL_PRESETS["diffwave"])
    a, b = tone_sweep(0.5, seed=1), tone_sweep(0.5, seed=2)
    batch = fe(torch.from_numpy(np.stack([a, b])))
    assert batch.shape == (2, 80, fe.num_frames(a.shape[0]))
    torch.testing.assert_close(batch[0], fe(torch.from_numpy(a)), rtol=0, atol=1e-6)
    torch.testing.assert_close(batch[1], fe(torch.from_numpy(b)), rtol=0, atol=1e-6)
    assert torch.equal(fe(torch.from_numpy(a)), fe(torch.from_numpy(a)))


def test_decompress_inverts_compress():
    for name in MEL_PRESETS:
        fe = MelFrontend(MEL_PRESETS[name])
        m = torch.tensor([1e-3, 0.05, 0.7, 3.0])
        torch.testing.assert_close(fe.decompress(fe.compress(m)), m, rtol=1e-4, atol=0)


def test_unknown_front_end_names_the_presets():
    with pytest.raises(WavediffError, match="audioldm"):
        mel_config_from_preset("tacotron3")


@pytest.mark.parametrize("name", sorted(MEL_PRESETS))
def test_filterbank_equals_librosa(name):
    c = MEL_PRESETS[name]
    ours = mel_filterbank(c)
    ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.max_frequency,
                              htk=c.mel_scale == "htk", norm="slaney" if c.mel_norm == "slaney" else None,
                              dtype=np.float32)
    assert ours.shape == ref.shape
    assert np.allclose(ours, ref, atol=1e-7, rtol=1e-5)
