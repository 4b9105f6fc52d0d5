"""WaveNet's teacher-forced training objective: cross-entropy over mu-law classes, or the negative
log-likelihood of the discretised mixture of logistics, averaged over samples (nats per sample)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.config import RunConfig
from wavediff.models.family import Batch, Phase, TrainingObjective
from wavediff.models.wavenet.mol import mol_log_likelihood
from wavediff.models.wavenet.mulaw import mulaw_encode
from wavediff.models.wavenet.network import WaveNet


class WaveNetObjective(TrainingObjective):
    """One phase, ``wavenet``: the mean negative log-likelihood of every sample of the crop given
    the samples before it (the input shifted one sample right behind silence)."""

    validation_name = "nll"

    def __init__(self, config: RunConfig, device: torch.device) -> None:
        self.config = config.wavenet

    def phases(self, model: nn.Module) -> list[Phase]:
        return [Phase("wavenet", list(model.parameters()))]

    def loss(self, net: nn.Module, batch: Batch, phase: str, training: bool) -> torch.Tensor:
        module: WaveNet = getattr(net, "module", net)
        audio = batch["audio"]
        outputs = net(module.teacher_inputs(audio), mel=batch.get("mel"), label=batch.get("label"))
        if self.config.output == "mulaw":
            target = mulaw_encode(audio, self.config.quantization_channels)
            return F.cross_entropy(outputs.float(), target)
        return -mol_log_likelihood(outputs.float(), audio.float(), self.config.mixtures).mean()
