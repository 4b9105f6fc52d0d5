"""A deliberately tiny model family used only by the tests: it proves the family contract
(:mod:`wavediff.models.family`) with a model that is not DiffWave and an objective of two
phases, each with its own optimiser, as a GAN has.

The generator maps the mel, repeated to the sample rate, through two 1-D convolutions to a
waveform; the critic scores waveforms. Phases: ``generator`` (L1 to the recording plus a
least-squares adversarial term) then ``critic`` (least-squares real/fake)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.models.family import ModelFamily, Phase, TrainingObjective, Vocoding

ADVERSARIAL_WEIGHT = 0.1


class ToyNet(nn.Module):
    def __init__(self, n_mels: int, hop: int, channels: int) -> None:
        super().__init__()
        self.hop = hop
        self.generator = nn.Sequential(nn.Conv1d(n_mels, channels, 1), nn.Tanh(), nn.Conv1d(channels, 1, 3, padding=1))
        self.critic = nn.Sequential(nn.Conv1d(1, 4, 15, stride=4), nn.LeakyReLU(0.2), nn.Conv1d(4, 1, 3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, F)`` -> ``(B, F * hop)``."""
        return self.generator(mel.repeat_interleave(self.hop, dim=-1)).squeeze(1)

    def score(self, audio: torch.Tensor) -> torch.Tensor:
        """The critic's scores ``(B, frames)`` of ``(B, L)`` audio."""
        return self.critic(audio.unsqueeze(1)).squeeze(1)


def generator_loss(model: nn.Module, mel: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    fake = model(mel)
    return F.l1_loss(fake, audio) + ADVERSARIAL_WEIGHT * (model.score(fake) - 1).square().mean()


def critic_loss(model: nn.Module, mel: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        fake = model(mel)
    return (model.score(audio) - 1).square().mean() + model.score(fake).square().mean()


class ToyObjective(TrainingObjective):
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def phases(self, model: nn.Module) -> list[Phase]:
        return [Phase("generator", list(model.generator.parameters())),
                Phase("critic", list(model.critic.parameters()))]

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor], phase: str, training: bool) -> torch.Tensor:
        model = net.module if hasattr(net, "module") else net
        mel, audio = batch["mel"].to(self.device), batch["audio"].to(self.device)
        return (generator_loss if phase == "generator" else critic_loss)(model, mel, audio)


class ToyVocoding(Vocoding):
    def __init__(self, model: ToyNet) -> None:
        self.model = model

    @torch.no_grad()
    def vocode(self, mels, *, steps, etas, generators, sampler):
        return [self.model(m.unsqueeze(0).to(next(self.model.parameters()).device))[0].float().cpu() for m in mels]


class ToyFamily(ModelFamily):
    name = "toy-gan"
    conditionings = ("mel",)

    def build_model(self, config) -> ToyNet:
        return ToyNet(config.mel.n_mels, config.mel.hop_length, config.model.residual_channels)

    def objective(self, config, device) -> TrainingObjective:
        return ToyObjective(device)

    def vocoding(self, model, config, device, *, precision, weights, chunk_seconds, max_memory_gb) -> Vocoding:
        return ToyVocoding(model)
