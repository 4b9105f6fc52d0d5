"""The generator and its discriminators as one module: one checkpoint, one DDP wrapper, one
``forward`` per training phase (so that DDP averages each phase's gradients over the ranks)."""
from __future__ import annotations

import torch
from torch import nn

from wavediff.config import HiFiGANConfig
from wavediff.errors import WavediffError
from wavediff.models.hifigan.discriminators import HiFiGANDiscriminators
from wavediff.models.hifigan.network import HiFiGANGenerator

PHASES = ("discriminator", "generator")


class HiFiGAN(nn.Module):
    """``forward(mel (B, n_mels, F))``: the waveform ``(B, F * hop)``.

    ``forward(mel, audio (B, F * hop), phase='discriminator')``: the discriminators' logits on the
    recording and on the generator's output (computed without gradients), each a list over the
    sub-discriminators. ``phase='generator'``: ``(generated audio, its logits, its feature maps,
    the recording's feature maps)``, the recording's computed without gradients.
    ``discriminators=False`` builds the generator alone, for inference.
    """

    def __init__(self, n_mels: int, config: HiFiGANConfig, discriminators: bool = True) -> None:
        super().__init__()
        self.generator = HiFiGANGenerator(n_mels, config)
        self.discriminators = HiFiGANDiscriminators(config) if discriminators else None
        self.hop_length = config.hop_length

    def forward(self, mel: torch.Tensor, audio: torch.Tensor | None = None, phase: str | None = None):
        if phase is None:
            return self.generator(mel)
        if audio is None or phase not in PHASES:
            raise WavediffError(f"HiFiGAN phase={phase!r} needs the recording and one of {list(PHASES)}")
        if self.discriminators is None:
            raise WavediffError(f"HiFiGAN phase={phase!r} needs the discriminators; this model was built without them")
        if phase == "discriminator":
            with torch.no_grad():
                fake = self.generator(mel)
            real_logits, _ = self.discriminators(audio)
            fake_logits, _ = self.discriminators(fake)
            return real_logits, fake_logits
        fake = self.generator(mel)
        fake_logits, fake_features = self.discriminators(fake)
        with torch.no_grad():
            _, real_features = self.discriminators(audio)
        return fake, fake_logits, fake_features, real_features
