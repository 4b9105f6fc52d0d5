"""The discretised mixture of logistics (Salimans et al. 2017, PixelCNN++; used by Parallel
WaveNet and Tacotron 2's WaveNet) over ``2 ** bits`` levels of audio in [-1, 1].

Parameters ``(B, 3 K, L)``: mixture logits, means and log-scales of ``K`` logistics, in that order.
A level ``x`` has probability mass ``sum_k pi_k [sigma((x + h - mu_k) / s_k) - sigma((x - h - mu_k) / s_k)]``
with ``h = 1 / (2 ** bits - 1)`` the half bin width; the lowest level takes all mass below it and
the highest all mass above it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = -7.0
"""Log-scales are floored here (as in the public implementations), so no logistic is narrower
than about a thousandth of a bin."""


def split_mixture(params: torch.Tensor, mixtures: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, 3 K, L)`` -> logits, means, log-scales, each ``(B, K, L)`` (log-scales floored)."""
    if params.shape[1] != 3 * mixtures:
        raise ValueError(f"mixture parameters have {params.shape[1]} channels, not 3 x {mixtures}")
    logits, means, log_scales = params.split(mixtures, dim=1)
    return logits, means, log_scales.clamp(min=LOG_SCALE_MIN)


def mol_log_likelihood(params: torch.Tensor, target: torch.Tensor, mixtures: int, bits: int = 16) -> torch.Tensor:
    """Log-probability ``(B, L)`` of each target sample ``(B, L)`` in [-1, 1], quantised to ``2 ** bits`` levels."""
    logits, means, log_scales = split_mixture(params, mixtures)
    half = 1.0 / (2 ** bits - 1)
    x = target.unsqueeze(1)
    inv = torch.exp(-log_scales)
    upper, lower = (x - means + half) * inv, (x - means - half) * inv
    log_cdf_upper = F.logsigmoid(upper)                                   # log sigma(upper)
    log_one_minus_cdf_lower = -F.softplus(lower)                          # log (1 - sigma(lower))
    # log (sigma(upper) - sigma(lower)), computed stably; the bin's centre density when it underflows
    mass = torch.sigmoid(upper) - torch.sigmoid(lower)
    centre = (x - means) * inv
    log_density = centre - log_scales - 2 * F.softplus(centre) + torch.log(torch.tensor(2 * half))
    log_mass = torch.where(mass > 1e-5, torch.log(mass.clamp(min=1e-12)), log_density)
    log_prob = torch.where(x < -1 + half, log_cdf_upper,
                           torch.where(x > 1 - half, log_one_minus_cdf_lower, log_mass))
    return torch.logsumexp(log_prob + F.log_softmax(logits, dim=1), dim=1)


def mol_sample(params: torch.Tensor, mixtures: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
    """One draw ``(B, L)`` in [-1, 1] per position: a component by its weight, then a logistic
    sample ``mu + s (ln u - ln(1 - u))`` (``temperature`` scales ``s``)."""
    logits, means, log_scales = split_mixture(params, mixtures)
    b, k, length = logits.shape
    probs = F.softmax(logits, dim=1).permute(0, 2, 1).reshape(-1, k)
    choice = torch.multinomial(probs, 1, generator=generator).reshape(b, 1, length)
    mu = means.gather(1, choice)[:, 0]
    s = torch.exp(log_scales.gather(1, choice)[:, 0]) * temperature
    u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype).clamp(1e-5, 1 - 1e-5)
    return (mu + s * (torch.log(u) - torch.log1p(-u))).clamp(-1.0, 1.0)
