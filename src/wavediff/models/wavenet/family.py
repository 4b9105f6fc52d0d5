"""The WaveNet family: an autoregressive mel vocoder, class-conditional or unconditional generator
(see docs/families.md for the contract)."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from wavediff.config import RunConfig
from wavediff.models.family import ModelFamily, TrainingObjective, Vocoding
from wavediff.models.wavenet.generation import generate
from wavediff.models.wavenet.network import WaveNet
from wavediff.models.wavenet.objective import WaveNetObjective
from wavediff.models.wavenet.vocoding import VOCODING_PRECISIONS, WaveNetVocoding

PREVIEW_SAMPLES = 2048
"""Samples of a TensorBoard preview: generation in torch runs a few hundred samples a second."""


class WaveNetFamily(ModelFamily):
    name = "wavenet"
    conditionings = ("mel", "class", "none")
    generates_clips = True
    vocoding_precisions = VOCODING_PRECISIONS

    def build_model(self, config: RunConfig) -> WaveNet:
        mel = config.model.conditioning == "mel"
        classes = config.model.num_classes if config.model.conditioning == "class" else None
        return WaveNet(config.wavenet, n_mels=config.mel.n_mels if mel else None,
                       hop_length=config.mel.hop_length if mel else None, num_classes=classes)

    def describe(self, model: nn.Module, config: RunConfig) -> dict[str, Any]:
        return {"parameters": sum(p.numel() for p in model.parameters()),
                "receptive_field": config.wavenet.receptive_field}

    def objective(self, config: RunConfig, device: torch.device) -> TrainingObjective:
        return WaveNetObjective(config, device)

    @torch.no_grad()
    def preview(self, model: nn.Module, config: RunConfig, cond: dict[str, torch.Tensor], length: int,
                generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The first :data:`PREVIEW_SAMPLES` samples (at most ``length``), drawn incrementally."""
        n = min(length, PREVIEW_SAMPLES)
        return generate(model, n, mel=cond.get("mel"), label=cond.get("labels"), generator=generator)[0]

    def vocoding(self, model: nn.Module, config: RunConfig, device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> Vocoding:
        assert isinstance(model, WaveNet)
        return WaveNetVocoding(model, device, precision, progress=sys.stderr.isatty())

    @torch.no_grad()
    def generate_clips(self, model: nn.Module, config: RunConfig, labels: Sequence[int] | None, seeds: Sequence[int],
                       *, temperature: float, batch_size: int, progress: bool) -> torch.Tensor:
        """Clips drawn sample by sample, ``batch_size`` at a time, clip ``i`` from a generator seeded ``seeds[i]``."""
        assert isinstance(model, WaveNet)
        device = next(model.parameters()).device
        out = torch.empty(len(seeds), config.clip_samples)
        for b0 in range(0, len(seeds), batch_size):
            rows = range(b0, min(len(seeds), b0 + batch_size))
            gens = [torch.Generator().manual_seed(seeds[i]) for i in rows]
            label = None if labels is None else torch.tensor([labels[i] for i in rows], device=device)
            out[b0:b0 + len(rows)] = generate(model, config.clip_samples, batch=len(rows), label=label, generator=gens,
                                              temperature=temperature, progress=progress).cpu()
        return out
