"""The DiffWave training objective (Algorithm 1): unweighted epsilon prediction, PriorGrad's
Sigma^-1-weighted form under a data-dependent prior (:mod:`wavediff.diffusion.prior`), and an
optional multi-resolution STFT loss on the estimate of the clean signal."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from wavediff.diffusion.samplers import Denoiser
from wavediff.diffusion.schedule import NoiseSchedule
from wavediff.errors import WavediffError


def diffusion_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    loss_type: str = "l2",
    cond: dict[str, Any] | None = None,
    generator: torch.Generator | None = None,
    steps: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    noise_std: torch.Tensor | None = None,
    spectral_weight: float = 0.0,
) -> torch.Tensor:
    """Mean ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|| over a batch.

    ``t ~ Uniform{0..T-1}`` (0-based) and ``eps ~ N(0, I)`` are drawn on CPU from
    ``generator`` unless given. ``loss_type='l2'`` is the paper's squared error,
    ``'l1'`` the absolute error used by lmnt-com/diffwave and WaveGrad.

    With ``noise_std`` (PriorGrad's sigma, ``(B, L)``) the noise is ``sigma eps``, the
    network predicts it, and the error is measured in the prior's units:
    ``||(eps_theta - sigma eps) / sigma||``. ``noise_std`` of ones is the standard objective.

    ``spectral_weight`` > 0 adds ``spectral_weight * stft_loss(x0, x0_hat)`` with the
    network's estimate ``x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)``
    (:func:`stft_loss`).

    Args:
        x0: ``(B, L)`` clean audio.
    Returns:
        scalar loss.
    """
    if loss_type not in ("l1", "l2"):
        raise WavediffError(f"loss_type={loss_type!r} is not allowed; choose one of ['l1', 'l2']")
    batch = x0.shape[0]
    if steps is None:
        steps = torch.randint(0, schedule.num_steps, (batch,), generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32)
    steps = steps.to(x0.device)
    noise = noise.to(device=x0.device, dtype=x0.dtype)
    if noise_std is not None:
        noise_std = noise_std.to(device=x0.device, dtype=torch.float32)
        noise = noise * noise_std
    x_t = schedule.add_noise(x0, noise, steps)
    pred = denoiser(x_t, steps.to(torch.float32), **(cond or {}))
    diff = pred.float() - noise.float()
    if noise_std is not None:
        diff = diff / noise_std
    loss = diff.abs().mean() if loss_type == "l1" else diff.square().mean()
    if spectral_weight > 0:
        abar = schedule.alphas_cumprod.to(x0.device)[steps].float().unsqueeze(-1)
        x0_hat = (x_t.float() - (1.0 - abar).sqrt() * pred.float()) / abar.sqrt()
        loss = loss + spectral_weight * stft_loss(x0.float(), x0_hat)
    return loss


# (n_fft, hop, win) of Parallel WaveGAN's loss, the same as the evaluation's MR-STFT distance
STFT_LOSS_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def stft_loss(reference: torch.Tensor, estimate: torch.Tensor,
              resolutions: Sequence[tuple[int, int, int]] = STFT_LOSS_RESOLUTIONS) -> torch.Tensor:
    """Parallel WaveGAN's multi-resolution STFT loss, differentiable: for each
    ``(n_fft, hop, win)`` (Hann window) the spectral convergence ``||S| - |S^||_F / ||S||_F`` of
    each item plus the mean ``|ln|S| - ln|S^||`` (magnitudes floored at 1e-7), averaged over
    items and resolutions. ``reference``, ``estimate`` ``(B, L)``; a scalar."""
    total = reference.new_zeros(())
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=reference.device)
        mags = [torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                           return_complex=True).abs().clamp(min=1e-7) for x in (reference, estimate)]
        s_ref, s_est = mags                                                  # (B, bins, frames)
        sc = torch.linalg.norm((s_ref - s_est).flatten(1), dim=1) / torch.linalg.norm(s_ref.flatten(1), dim=1)
        total = total + sc.mean() + (s_ref.log() - s_est.log()).abs().mean()
    return total / len(resolutions)
