"""HiFi-GAN's training objective (Kong, Kim and Bae 2020, Section 2.3) as a family objective.

Two phases per optimiser step, as the authors' loop: the discriminators first (least squares,
the generator's output held fixed), then the generator (least-squares adversarial term,
``feature_loss_weight`` x feature matching and ``mel_loss_weight`` x the L1 distance of
log-mels). Both use AdamW with beta (0.8, 0.99). The loss mel is the run's front-end with its
upper band edge at Nyquist (the authors' ``fmax_for_loss: null``). The main phase is the
generator; its validation loss is the mel L1 alone (the authors' "mel-spectrogram error").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from wavediff.audio.mel import MelFrontend
from wavediff.config import RunConfig
from wavediff.models.family import Batch, Phase, TrainingObjective
from wavediff.models.hifigan.losses import (discriminator_loss, feature_matching_loss, generator_adversarial_loss,
                                            mel_loss)

ADAM_BETAS = (0.8, 0.99)


def adamw(parameters: Sequence[nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """The authors' optimiser: AdamW, beta (0.8, 0.99), torch's default weight decay."""
    return torch.optim.AdamW(parameters, lr=learning_rate, betas=ADAM_BETAS)


class HiFiGANObjective(TrainingObjective):
    main_phase = "generator"
    validation_name = "mel_error"

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.loss_frontend = MelFrontend(replace(config.mel, f_max=config.mel.sample_rate / 2), device)

    def phases(self, model: nn.Module) -> list[Phase]:
        return [Phase("discriminator", list(model.discriminators.parameters()), adamw),
                Phase("generator", list(model.generator.parameters()), adamw)]

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """The loss log-mel ``(B, n_mels, F)`` of ``(B, L)`` audio, with gradients, in fp32 under
        any autocast (a bf16 filterbank would round the mel error to 3 significant digits)."""
        fe = self.loss_frontend
        with torch.autocast(self.device.type, enabled=False):
            return fe.compress(fe.mel_magnitude(audio.float()))

    def loss(self, net: nn.Module, batch: Batch, phase: str, training: bool) -> torch.Tensor:
        mel = batch["mel"].to(self.device, non_blocking=True)
        audio = batch["audio"].to(self.device, non_blocking=True)
        if phase == "discriminator":
            real, fake = net(mel, audio, phase="discriminator")
            return discriminator_loss(real, fake)
        if not training:
            return mel_loss(self.log_mel(audio), self.log_mel(net(mel)))
        fake, fake_logits, fake_features, real_features = net(mel, audio, phase="generator")
        h = self.config.hifigan
        return (generator_adversarial_loss(fake_logits)
                + h.feature_loss_weight * feature_matching_loss(real_features, fake_features)
                + h.mel_loss_weight * mel_loss(self.log_mel(audio), self.log_mel(fake)))
