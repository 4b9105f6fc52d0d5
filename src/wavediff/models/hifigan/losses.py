"""HiFi-GAN's losses (Kong, Kim and Bae 2020, Section 2.3): least-squares GAN losses summed over
the sub-discriminators, feature matching (L1 between the real and generated feature maps, each
map's mean, summed over maps and sub-discriminators) and the mel L1 of the generator."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def discriminator_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_k mean((1 - D_k(x))^2) + mean(D_k(G(s))^2)`` over the sub-discriminators' logits."""
    return sum(((1 - r) ** 2).mean() + (f ** 2).mean() for r, f in zip(real, fake, strict=True))


def generator_adversarial_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_k mean((1 - D_k(G(s)))^2)``."""
    return sum(((1 - f) ** 2).mean() for f in fake)


def feature_matching_loss(real: Sequence[Sequence[torch.Tensor]],
                          fake: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """``sum_k sum_i mean|D_k^i(x) - D_k^i(G(s))|``; the real features carry no gradient."""
    return sum((r.detach() - f).abs().mean() for rs, fs in zip(real, fake, strict=True)
               for r, f in zip(rs, fs, strict=True))


def mel_loss(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """``mean|mel(x) - mel(G(s))|`` of two log-mels of the same shape."""
    return (mel_real - mel_fake).abs().mean()
