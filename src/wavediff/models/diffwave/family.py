"""DiffWave as a model family: its network, data-measured settings, objective, preview and vocoding."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Iterable

import torch
from torch import nn

from wavediff.config import RunConfig
from wavediff.diffusion.prior import max_frame_energy
from wavediff.models.diffwave.network import DiffWave, build_model, count_parameters
from wavediff.models.diffwave.objective import DiffWaveObjective
from wavediff.models.diffwave.vocoding import DiffWaveVocoding, preview_sample
from wavediff.models.family import ModelFamily, TrainingObjective, Vocoding

log = logging.getLogger(__name__)


class DiffWaveFamily(ModelFamily):
    """DiffWave: a mel vocoder, a class-conditional and an unconditional generator."""

    name = "diffwave"
    conditionings = ("mel", "class", "none")

    def build_model(self, config: RunConfig) -> DiffWave:
        return build_model(config)

    def describe(self, model: nn.Module, config: RunConfig) -> dict[str, Any]:
        return {"parameters": count_parameters(model), "receptive_field": config.model.receptive_field}

    def prepare_config(self, config: RunConfig, mels: Callable[[], Iterable[torch.Tensor]] | None) -> RunConfig:
        """PriorGrad's energy scale (``diffusion.prior_energy_max``), measured on the training mels
        when the prior is on and the scale is not given."""
        d = config.diffusion
        if d.prior != "priorgrad" or d.prior_energy_max > 0 or mels is None:
            return config
        scale = max_frame_energy(mels(), config.mel)
        log.info("PriorGrad prior: largest frame energy of the training data %.4g (diffusion.prior_energy_max)", scale)
        return replace(config, diffusion=replace(d, prior_energy_max=scale))

    def objective(self, config: RunConfig, device: torch.device) -> TrainingObjective:
        return DiffWaveObjective(config, device)

    def preview(self, model: nn.Module, config: RunConfig, cond: dict[str, torch.Tensor], length: int,
                generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The fast schedule's sample (the full chain for a config without one)."""
        return preview_sample(model, config, cond, length, generator, device)

    def vocoding(self, model: nn.Module, config: RunConfig, device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> Vocoding:
        assert isinstance(model, DiffWave)
        return DiffWaveVocoding(model, config, device, precision=precision, weights=weights,
                                chunk_seconds=chunk_seconds, max_memory_gb=max_memory_gb)
