"""The WaveGrad family: a diffusion mel vocoder on continuous noise levels (see docs/families.md)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wavediff.config import RunConfig
from wavediff.errors import WavediffError
from wavediff.models.diffwave.objective import DiffWaveObjective
from wavediff.models.diffwave.vocoding import preview_sample
from wavediff.models.family import ModelFamily, TrainingObjective, Vocoding
from wavediff.models.wavegrad.network import WaveGrad, build_wavegrad, count_parameters
from wavediff.models.wavegrad.vocoding import VOCODING_PRECISIONS, WaveGradVocoding


class WaveGradFamily(ModelFamily):
    """WaveGrad (Chen et al. 2021). Its objective is DiffWave's (:class:`DiffWaveObjective`) on
    continuous levels: noise levels drawn between adjacent steps of the training schedule, the
    configured loss (the presets: L1, as the paper)."""

    name = "wavegrad"
    conditionings = ("mel",)
    vocoding_precisions = VOCODING_PRECISIONS

    def check_config(self, config: RunConfig) -> None:
        super().check_config(config)
        if config.diffusion.noise_input != "level":
            raise WavediffError("family 'wavegrad' is conditioned on the continuous noise level; it needs "
                                f"diffusion.noise_input='level', not {config.diffusion.noise_input!r}")
        if config.wavegrad.hop_length != config.mel.hop_length:
            raise WavediffError(f"wavegrad.upsample_factors={list(config.wavegrad.upsample_factors)} upsample "
                                f"{config.wavegrad.hop_length} times, but mel.hop_length={config.mel.hop_length}: "
                                "the factors must multiply to the hop")

    def build_model(self, config: RunConfig) -> WaveGrad:
        return build_wavegrad(config)

    def describe(self, model: nn.Module, config: RunConfig) -> dict[str, Any]:
        return {"parameters": count_parameters(model)}

    def objective(self, config: RunConfig, device: torch.device) -> TrainingObjective:
        return DiffWaveObjective(config, device)

    def preview(self, model: nn.Module, config: RunConfig, cond: dict[str, torch.Tensor], length: int,
                generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The fast schedule's sample (WaveGrad's 6 iterations in the presets)."""
        return preview_sample(model, config, cond, length, generator, device)

    def vocoding(self, model: nn.Module, config: RunConfig, device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> Vocoding:
        assert isinstance(model, WaveGrad)
        if weights != "float":
            raise WavediffError(f"WaveGrad vocodes with float weights, not weights={weights!r}")
        return WaveGradVocoding(model, config, device, precision, chunk_seconds, max_memory_gb)
