"""Batched, deterministic mel-spectrogram front-end in torch.

The mel filterbank is librosa's (``librosa.filters.mel``) recomputed here in numpy, because
importing librosa and building it took 1.5 s of every ``wavediff vocode`` start-up; the tests
check it against librosa for every preset. The STFT, padding, magnitude and compression are
computed in torch so that they run batched on any device. The numbers of each preset live in :data:`wavediff.config.MEL_PRESETS`.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from wavediff.config import MEL_PRESETS, MelConfig
from wavediff.errors import WavediffError


def mel_config_from_preset(name: str) -> MelConfig:
    """The :class:`MelConfig` of a named front-end preset."""
    if name not in MEL_PRESETS:
        raise WavediffError(f"unknown mel front-end {name!r}; choose one of {sorted(MEL_PRESETS)}")
    return MEL_PRESETS[name]


def hz_to_mel(hz: np.ndarray, htk: bool) -> np.ndarray:
    """HTK ``2595 log10(1 + f/700)``, or Slaney's: linear (3/200 per Hz) below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(hz, min_log_hz)
    return np.where(hz >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, hz / f_sp)


def mel_to_hz(mel: np.ndarray, htk: bool) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(config: MelConfig) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1)`` float32 triangular filterbank, as ``librosa.filters.mel``.

    Band edges are ``n_mels + 2`` points evenly spaced in mel between ``f_min`` and ``f_max``;
    band i rises from edge i to i+1 and falls to i+2 over the FFT bin frequencies; with
    ``mel_norm='slaney'`` each band is scaled by ``2 / (edge[i+2] - edge[i])`` (unit area).
    """
    htk = config.mel_scale == "htk"
    bins = np.linspace(0.0, config.sample_rate / 2, 1 + config.n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(config.f_min, htk), hz_to_mel(config.max_frequency, htk),
                                  config.n_mels + 2), htk)
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if config.mel_norm == "slaney":
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def decompress_mel(mel: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """Mel magnitudes from a compressed mel of front-end ``config`` (the inverse of
    :meth:`MelFrontend.compress`, exact where its clamps were not active)."""
    if config.compression == "log":
        return torch.exp(mel)
    db = mel * 100.0 - 100.0 + 20.0
    return torch.pow(10.0, db / 20.0)


class MelFrontend:
    """Audio ``(B, L)`` or ``(L,)`` to mel ``(B, n_mels, F)`` or ``(n_mels, F)``.

    ``F = 1 + L // hop`` for ``padding='center'`` and ``F = (L - hop) // hop + 1`` (that
    is ``L // hop`` when ``L`` is a multiple of the hop) for ``padding='hifigan'``.
    """

    def __init__(self, config: MelConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.filterbank = torch.from_numpy(mel_filterbank(config)).to(self.device)
        self.window = torch.hann_window(config.win_length, periodic=True, device=self.device)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def num_frames(self, num_samples: int) -> int:
        """Number of mel frames produced for ``num_samples`` of audio."""
        c = self.config
        if c.padding == "center":
            return 1 + num_samples // c.hop_length
        padded = num_samples + (c.n_fft - c.hop_length)
        return max(0, (padded - c.n_fft) // c.hop_length + 1)

    def magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``(B, n_fft//2+1, F)`` of ``(B, L)`` audio."""
        c = self.config
        if c.padding == "center":
            if audio.shape[-1] <= c.n_fft // 2:
                audio = F.pad(audio, (0, c.n_fft // 2 + 1 - audio.shape[-1]))
            center = True
        else:
            pad = (c.n_fft - c.hop_length) // 2
            if audio.shape[-1] <= pad:
                audio = F.pad(audio, (0, pad + 1 - audio.shape[-1]))
            audio = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
            center = False
        spec = torch.stft(
            audio, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
            window=self.window.to(audio.dtype), center=center, pad_mode="reflect",
            normalized=False, onesided=True, return_complex=True,
        )
        if c.magnitude_eps > 0:
            mag = torch.sqrt(spec.real.square() + spec.imag.square() + c.magnitude_eps)
        else:
            mag = spec.abs()
        if c.stft_normalized:
            mag = mag / self.window.square().sum().sqrt().to(mag.dtype)
        return mag

    def mel_magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        """Uncompressed mel magnitudes ``(B, n_mels, F)``."""
        mag = self.magnitude(audio)
        return torch.matmul(self.filterbank.to(mag.dtype), mag)

    def compress(self, mel_magnitude: torch.Tensor) -> torch.Tensor:
        c = self.config
        if c.compression == "log":
            return torch.log(torch.clamp(mel_magnitude, min=c.log_floor))
        db = 20.0 * torch.log10(torch.clamp(mel_magnitude, min=1e-5)) - 20.0
        return torch.clamp((db + 100.0) / 100.0, 0.0, 1.0)

    def decompress(self, mel: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`compress` (exact where the clamps were not active)."""
        return decompress_mel(mel, self.config)

    @torch.no_grad()
    def __call__(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(audio, np.ndarray):
            audio = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if audio.dim() not in (1, 2):
            raise WavediffError(f"audio must have shape (L,) or (B, L), got {tuple(audio.shape)}")
        squeeze = audio.dim() == 1
        x = audio.unsqueeze(0) if squeeze else audio
        x = x.to(self.device, torch.float32 if x.dtype != torch.float64 else torch.float64)
        mel = self.compress(self.mel_magnitude(x))
        return mel[0] if squeeze else mel
