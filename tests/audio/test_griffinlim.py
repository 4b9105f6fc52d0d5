"""wavediff.audio.griffinlim: the STFT-magnitude projection, Griffin-Lim and the mel inversion.
References: a signal whose STFT magnitude is the target is a fixed point of the projection;
librosa's Griffin-Lim and non-negative least squares for the quality of the torch ones; the mel of
the recovered magnitude against the target mel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wavediff.audio.griffinlim import MagnitudeProjection, frame_offset, griffin_lim_from_mel, magnitude_from_mel
from wavediff.audio.mel import MelFrontend, mel_config_from_preset
from wavediff.config import MEL_PRESETS
from wavediff.errors import WavediffError
from wavediff.metrics import log_mel_l1

from helpers import tone_sweep


N_FFT, HOP, WIN = 1024, 256, 1024


def _stft_magnitude(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, WIN, torch.hann_window(WIN), center=True, return_complex=True).abs()


@pytest.mark.parametrize("offset", [0, 128])
def test_a_signal_with_the_target_magnitude_is_left_unchanged(offset):
    x = torch.from_numpy(tone_sweep(0.5))
    target = _stft_magnitude(x[offset:])
    projection = MagnitudeProjection(target, N_FFT, HOP, WIN, offset=offset)
    for iterations in (1, 3):
        out = projection(x, iterations)
        assert out.shape == x.shape
        assert (out - x).abs().max() < 1e-4


def test_projection_moves_a_signal_towards_the_target_magnitude():
    x = torch.from_numpy(tone_sweep(0.5))
    target = _stft_magnitude(x)
    start = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

    def distance(y):
        return float((_stft_magnitude(y) - target).norm() / target.norm())

    projection = MagnitudeProjection(target, N_FFT, HOP, WIN)
    once = projection(start, 1)
    assert distance(once) < distance(start)
    assert distance(projection(start, 8, momentum=0.0)) <= distance(once) + 1e-6   # plain GL never gets worse


def test_torch_griffin_lim_is_as_consistent_as_librosas():
    import librosa

    x = tone_sweep(0.6)
    target = _stft_magnitude(torch.from_numpy(x)).numpy()
    ours = MagnitudeProjection(target, N_FFT, HOP, WIN).from_noise(torch.Generator().manual_seed(0), 32)
    theirs = librosa.griffinlim(target, n_iter=32, hop_length=HOP, win_length=WIN, n_fft=N_FFT, center=True,
                                length=x.shape[0], random_state=np.random.RandomState(0), init="random")

    def convergence(y):
        mag = _stft_magnitude(torch.as_tensor(y, dtype=torch.float32)).numpy()
        return float(np.linalg.norm(mag - target) / np.linalg.norm(target))

    assert ours.shape == (target.shape[-1] * HOP,)
    assert convergence(ours[: x.shape[0]]) < 1.25 * convergence(theirs) + 0.02
    assert convergence(ours[: x.shape[0]]) < 0.3


@pytest.mark.parametrize("preset", ["diffwave", "hifigan"])
def test_magnitude_from_the_mel_gives_back_the_mel(preset):
    """The NNLS magnitude's mel, through the front-end's own filterbank and compression, is the mel."""
    cfg = mel_config_from_preset(preset)
    fe = MelFrontend(cfg)
    x = torch.from_numpy(tone_sweep(0.5))
    mel = fe(x)
    mag = torch.from_numpy(magnitude_from_mel(mel, fe)).float()
    if cfg.stft_normalized:
        mag = mag / fe.window.square().sum().sqrt()
    again = fe.compress(fe.filterbank @ mag)
    assert mag.shape == (cfg.n_fft // 2 + 1, mel.shape[-1])
    assert float((again - mel).abs().mean()) < 0.02 * float(mel.abs().mean()) + 1e-3
    assert frame_offset(fe) == (0 if cfg.padding == "center" else cfg.hop_length // 2)


@pytest.mark.parametrize("preset", ["diffwave", "hifigan"])
def test_fast_nonnegative_least_squares_is_as_good_as_librosas(preset):
    fe = MelFrontend(mel_config_from_preset(preset))
    mel = fe(torch.from_numpy(tone_sweep(0.8, seed=3)))
    ours = torch.from_numpy(magnitude_from_mel(mel, fe, method="fista"))
    theirs = torch.from_numpy(magnitude_from_mel(mel, fe, method="lbfgs"))
    mags = fe.decompress(mel).double()
    if fe.config.stft_normalized:
        mags = mags * float(fe.window.square().sum().sqrt())
    bank = fe.filterbank.double()

    def residual(a):
        return float((bank @ a - mags).norm() / mags.norm())

    assert float(ours.min()) >= 0 and ours.shape == theirs.shape
    assert residual(ours) <= residual(theirs)
    with pytest.raises(WavediffError, match="method"):
        magnitude_from_mel(mel, fe, method="pinv")


def test_griffin_lim_reconstructs_the_magnitude_better_than_noise():
    for name in ("diffwave", "hifigan"):
        fe = MelFrontend(MEL_PRESETS[name])
        x = tone_sweep(1.0)
        y = griffin_lim_from_mel(fe(torch.from_numpy(x)), fe, n_iter=32)
        assert y.shape[0] == fe(torch.from_numpy(x)).shape[-1] * fe.hop_length
        noise = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32) * 0.1
        assert log_mel_l1(x, y[: x.shape[0]], fe) < 0.5 * log_mel_l1(x, noise, fe)
