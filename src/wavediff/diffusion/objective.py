"""The DiffWave training objective (Algorithm 1): unweighted epsilon prediction, PriorGrad's
Sigma^-1-weighted form under a data-dependent prior (:mod:`wavediff.diffusion.prior`), and an
optional multi-resolution STFT loss on the estimate of the clean signal."""
from __future__ import annotations

from typing import Any

import torch

from wavediff.diffusion.samplers import Denoiser
from wavediff.diffusion.schedule import NoiseSchedule
from wavediff.errors import WavediffError
from wavediff.metrics.spectral import multi_resolution_stft_loss as stft_loss


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
    levels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)|| over a batch.

    ``t ~ Uniform{0..T-1}`` (0-based) and ``eps ~ N(0, I)`` are drawn on CPU from
    ``generator`` unless given. ``loss_type='l2'`` is the paper's squared error,
    ``'l1'`` the absolute error used by lmnt-com/diffwave and WaveGrad.

    With ``noise_std`` (PriorGrad's sigma, ``(B, L)``) the noise is ``sigma eps``, the
    network predicts it, and the error is measured in the prior's units:
    ``||(eps_theta - sigma eps) / sigma||``. ``noise_std`` of ones is the standard objective.

    With ``levels`` ``(B,)`` (continuous noise levels sqrt(abar), WaveGrad's training:
    :meth:`~wavediff.diffusion.schedule.NoiseSchedule.noise_levels`) the signal is noised to those
    levels and the denoiser is called with them instead of ``steps``.

    ``spectral_weight`` > 0 adds ``spectral_weight * stft_loss(x0, x0_hat)`` with the
    network's estimate ``x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)``
    (:func:`wavediff.metrics.spectral.multi_resolution_stft_loss`).

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
    if levels is not None:
        levels = levels.to(x0.device)
        x_t = schedule.add_noise_at_levels(x0, noise, levels)
        pred = denoiser(x_t, levels.to(torch.float32), **(cond or {}))
        abar = levels.to(torch.float64).square()
    else:
        x_t = schedule.add_noise(x0, noise, steps)
        pred = denoiser(x_t, steps.to(torch.float32), **(cond or {}))
        abar = schedule.alphas_cumprod.to(x0.device)[steps]
    diff = pred.float() - noise.float()
    if noise_std is not None:
        diff = diff / noise_std
    loss = diff.abs().mean() if loss_type == "l1" else diff.square().mean()
    if spectral_weight > 0:
        abar = abar.float().unsqueeze(-1)
        x0_hat = (x_t.float() - (1.0 - abar).sqrt() * pred.float()) / abar.sqrt()
        loss = loss + spectral_weight * stft_loss(x0.float(), x0_hat)
    return loss

