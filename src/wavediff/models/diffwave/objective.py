"""DiffWave's training objective as a family objective: Algorithm 1 on the trainer's batches.

Per item, the diffusion step ``t``, the noise ``eps`` and the label dropout come from a generator
seeded by the item's own seed, so a step does not depend on how the batch is split over
micro-batches or processes. The loss is :func:`~wavediff.diffusion.objective.diffusion_loss`:
the paper's unweighted epsilon prediction, PriorGrad's form under ``diffusion.prior='priorgrad'``
and the optional spectral term ``train.spectral_loss_weight``.
"""
from __future__ import annotations

import torch
from torch import nn

from wavediff.config import RunConfig
from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.prior import noise_std
from wavediff.diffusion.schedule import linear_schedule
from wavediff.models.family import Batch, Phase, TrainingObjective
from wavediff.data.sampling import mix_seed

ITEM_DRAWS = 7   # salt of the per-item generator of t, eps and label dropout


class DiffWaveObjective(TrainingObjective):
    """One phase, ``denoiser``: the epsilon-prediction loss of the whole network."""

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        d = config.diffusion
        self.schedule = linear_schedule(d.num_steps, d.beta_start, d.beta_end)

    def phases(self, model: nn.Module) -> list[Phase]:
        return [Phase("denoiser", list(model.parameters()))]

    def inputs(self, batch: Batch, training: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                          torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio ``(B, L)``, conditioning, diffusion steps ``(B,)``, noise ``(B, L)`` on the device, and
        each item's position in [0, 1) between its step's level and the one before ``(B,)``, which a
        model on continuous levels is trained at (drawn last: the other draws are those of a
        step-conditioned run)."""
        audio = batch["audio"]
        steps = torch.empty(audio.shape[0], dtype=torch.long)
        positions = torch.empty(audio.shape[0], dtype=torch.float64)
        noise = torch.empty(audio.shape, dtype=torch.float32)
        drop = torch.zeros(audio.shape[0], dtype=torch.bool)
        rate = self.config.model.label_dropout
        for k, seed in enumerate(batch["seed"].tolist()):
            g = torch.Generator().manual_seed(mix_seed(int(seed), ITEM_DRAWS))
            steps[k] = torch.randint(0, self.schedule.num_steps, (1,), generator=g)
            drop[k] = bool(torch.rand(1, generator=g) < rate)
            noise[k] = torch.randn(audio.shape[1], generator=g)
            positions[k] = float(torch.rand(1, generator=g, dtype=torch.float64))
        cond: dict[str, torch.Tensor] = {}
        if "mel" in batch:
            cond["mel"] = batch["mel"].to(self.device, non_blocking=True)
        elif "label" in batch and self.config.model.conditioning == "class":
            labels = batch["label"]
            null = self.config.model.null_label
            if training and null is not None:
                labels = torch.where(drop, torch.full_like(labels, null), labels)
            cond["labels"] = labels.to(self.device, non_blocking=True)
        return audio.to(self.device, non_blocking=True), cond, steps, noise, positions

    def loss(self, net: nn.Module, batch: Batch, phase: str, training: bool) -> torch.Tensor:
        audio, cond, steps, noise, positions = self.inputs(batch, training)
        d = self.config.diffusion
        std = noise_std(cond["mel"], self.config.mel, d) if "mel" in cond else None
        levels = self.schedule.noise_levels(steps, positions) if d.noise_input == "level" else None
        return diffusion_loss(net, audio, self.schedule, loss_type=d.loss, cond=cond, steps=steps, noise=noise,
                              noise_std=std, spectral_weight=self.config.train.spectral_loss_weight, levels=levels)
