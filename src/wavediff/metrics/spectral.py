"""Spectral distances between a reference and a synthesised waveform."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from wavediff.audio.mel import MelFrontend

# (n_fft, hop, win) of Parallel WaveGAN (Yamamoto et al. 2020), also used by HiFi-GAN's successors.
PWG_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float()


def _match(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(reference.shape[-1], estimate.shape[-1])
    return reference[..., :n], estimate[..., :n]


def multi_resolution_stft_loss(reference: torch.Tensor, estimate: torch.Tensor,
                               resolutions: Sequence[tuple[int, int, int]] = PWG_RESOLUTIONS) -> torch.Tensor:
    """Parallel WaveGAN's multi-resolution STFT loss, differentiable, over a batch.

    For each (n_fft, hop, win), Hann window: each item's spectral convergence
    ``||S| - |S^||_F / ||S||_F`` plus the mean log-magnitude distance ``|ln|S| - ln|S^||``
    (magnitudes floored at 1e-7), averaged over items; summed, then averaged over the
    resolutions. ``reference``, ``estimate`` ``(B, L)``; returns a scalar tensor. The training
    objective's spectral term (``train.spectral_loss_weight``) and, for one item, the
    evaluation's MR-STFT distance.
    """
    total = reference.new_zeros(())
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=reference.device)
        s_ref, s_est = [torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                                   return_complex=True).abs().clamp(min=1e-7) for x in (reference, estimate)]
        sc = torch.linalg.norm((s_ref - s_est).flatten(1), dim=1) / torch.linalg.norm(s_ref.flatten(1), dim=1)
        total = total + sc.mean() + (s_ref.log() - s_est.log()).abs().mean()
    return total / len(resolutions)


def multi_resolution_stft_distance(reference: torch.Tensor | np.ndarray, estimate: torch.Tensor | np.ndarray,
                                   resolutions: Sequence[tuple[int, int, int]] = PWG_RESOLUTIONS) -> float:
    """Parallel WaveGAN's multi-resolution STFT loss, as a distance (lower is better):
    :func:`multi_resolution_stft_loss` of one pair ``(L,)``, cut to the shorter length."""
    ref, est = _match(_as_tensor(reference).reshape(-1), _as_tensor(estimate).reshape(-1))
    with torch.no_grad():
        return float(multi_resolution_stft_loss(ref.unsqueeze(0), est.unsqueeze(0), resolutions))


def log_mel_l1(reference: torch.Tensor | np.ndarray, estimate: torch.Tensor | np.ndarray,
               frontend: MelFrontend) -> float:
    """Mean absolute difference of natural-log mel magnitudes (floored at 1e-5) in ``frontend``.

    The front-end's filterbank and STFT are used, but compared as ``ln`` magnitudes
    whatever its own compression, so numbers from different presets mean the same thing.
    """
    ref, est = _match(_as_tensor(reference).reshape(-1), _as_tensor(estimate).reshape(-1))
    with torch.no_grad():
        a = frontend.mel_magnitude(ref.unsqueeze(0)).clamp(min=1e-5).log()
        b = frontend.mel_magnitude(est.unsqueeze(0)).clamp(min=1e-5).log()
    return float((a - b).abs().mean())
