"""PriorGrad's data-dependent prior (Lee et al., ICLR 2022, arXiv 2106.06406).

With ``diffusion.prior='priorgrad'`` the diffusion's noise is N(0, diag sigma^2) instead of
N(0, I), with one sigma per mel frame repeated over the frame's hop of samples:

    E_f = sqrt(sum_m mel_magnitude[m, f])               (frame energy)
    sigma_f = clamp(E_f / E_max, sigma_min, 1)

as PriorGrad's official vocoder code computes it from its natural-log mel (``exp`` of the
log-mel; here the inverse of whichever compression the front-end uses). Training noises
``x_t = sqrt(abar) x_0 + sqrt(1 - abar) sigma eps``, the network predicts ``sigma eps``,
and the loss is weighted by ``Sigma^-1``: ``mean(((eps_hat - sigma eps) / sigma)^2)``.
Sampling starts from ``sigma z`` and scales every step's noise by sigma. Silent frames
(sigma at its floor) then start nearly silent and stay so.

Deviations from the paper's code, both stated in docs/recipes.md: ``E_max`` is the largest
frame energy of the training data (measured when a run starts, recorded in its config)
instead of a constant fitted to one front-end (4.0 for HiFi-GAN's mel), since the project's
front-ends scale magnitudes differently; and sigma is clamped at 1 from above, so a
louder-than-training input never gets more noise than the standard prior.
"""
from __future__ import annotations

from typing import Iterable

import torch

from wavediff.audio.mel import decompress_mel
from wavediff.config import DiffusionConfig, MelConfig
from wavediff.errors import WavediffError


def frame_energy(mel: torch.Tensor, mel_config: MelConfig) -> torch.Tensor:
    """``E = sqrt(sum over bands of the mel magnitude)``: ``(..., n_mels, F)`` -> ``(..., F)`` fp32."""
    return decompress_mel(mel.float(), mel_config).sum(-2).sqrt()


def frame_std(mel: torch.Tensor, mel_config: MelConfig, diffusion: DiffusionConfig) -> torch.Tensor:
    """PriorGrad's sigma per frame ``(..., F)`` for a mel ``(..., n_mels, F)``."""
    if diffusion.prior_energy_max <= 0:
        raise WavediffError("diffusion.prior_energy_max is not set: it is measured on the training data when a "
                            "run starts (a checkpoint's config holds it); pass a positive value to use the "
                            "prior without one")
    energy = frame_energy(mel, mel_config)
    return (energy / diffusion.prior_energy_max).clamp(diffusion.prior_std_min, 1.0)


def noise_std(mel: torch.Tensor, mel_config: MelConfig, diffusion: DiffusionConfig) -> torch.Tensor | None:
    """The noise's standard deviation per sample, ``(..., F * hop)`` fp32, for a mel
    ``(..., n_mels, F)``; ``None`` for the standard prior (sigma = 1 everywhere)."""
    if diffusion.prior == "standard":
        return None
    return frame_std(mel, mel_config, diffusion).repeat_interleave(mel_config.hop_length, dim=-1)


def max_frame_energy(mels: Iterable[torch.Tensor], mel_config: MelConfig) -> float:
    """The largest frame energy over ``mels`` (each ``(n_mels, F)``): PriorGrad's ``E_max``."""
    energies = [float(frame_energy(m, mel_config).max()) for m in mels]
    if not energies:
        raise WavediffError("no mels to measure the prior's energy scale on")
    return max(energies)
