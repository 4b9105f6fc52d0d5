"""The HiFi-GAN family: a mel vocoder trained adversarially (see docs/families.md for the contract)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wavediff.config import RunConfig
from wavediff.errors import WavediffError
from wavediff.models.family import ModelFamily, TrainingObjective, Vocoding
from wavediff.models.hifigan.gan import HiFiGAN
from wavediff.models.hifigan.network import count_parameters
from wavediff.models.hifigan.objective import HiFiGANObjective
from wavediff.models.hifigan.vocoding import HiFiGANVocoding
from wavediff.models.hifigan.windows import reach_samples


class HiFiGANFamily(ModelFamily):
    name = "hifigan"
    conditionings = ("mel",)
    inference_parts = ("generator",)

    def check_config(self, config: RunConfig) -> None:
        super().check_config(config)
        h = config.hifigan
        if h.hop_length != config.mel.hop_length:
            raise WavediffError(f"hifigan.upsample_rates={list(h.upsample_rates)} upsample {h.hop_length} times, but "
                                f"mel.hop_length={config.mel.hop_length}: the rates must multiply to the hop")

    def build_model(self, config: RunConfig) -> HiFiGAN:
        return HiFiGAN(config.mel.n_mels, config.hifigan)

    def build_inference_model(self, config: RunConfig) -> tuple[HiFiGAN, tuple[str, ...]]:
        # the generator alone (not built on torch's meta device: weight norm over meta or emptied
        # tensors imports torch's symbolic-shape machinery, 2.5 s, more than the random draws cost)
        return HiFiGAN(config.mel.n_mels, config.hifigan, discriminators=False), self.inference_parts

    def describe(self, model: nn.Module, config: RunConfig) -> dict[str, Any]:
        # the generator as inference runs it (and the paper counts it): weight norm folded, no gains
        folded = sum(p.numel() for name, p in model.generator.named_parameters() if not name.endswith("original0"))
        return {"parameters": count_parameters(model), "generator_parameters": folded,
                "receptive_field": 2 * reach_samples(config.hifigan) + 1}

    def objective(self, config: RunConfig, device: torch.device) -> TrainingObjective:
        return HiFiGANObjective(config, device)

    @torch.no_grad()
    def preview(self, model: nn.Module, config: RunConfig, cond: dict[str, torch.Tensor], length: int,
                generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return model(cond["mel"].to(device))[0, :length]

    def vocoding(self, model: nn.Module, config: RunConfig, device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> Vocoding:
        return HiFiGANVocoding(model, device, precision, weights, config.mel.sample_rate, chunk_seconds, max_memory_gb)
