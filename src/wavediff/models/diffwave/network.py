"""The DiffWave denoiser (Kong et al., ICLR 2021, Section 3.1 and Figure 2)."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.config import ModelConfig, RunConfig
from wavediff.errors import WavediffError
from wavediff.models.diffwave.conditioning import DiffusionStepEmbedding, LabelEmbedding, MelUpsampler
from wavediff.models.diffwave.fused import StackWorkspace, fused_forward

IMPLEMENTATIONS = ("reference", "fused")


class ResidualLayer(nn.Module):
    """One residual layer: step bias, dilated conv, conditioner bias, gate, residual/skip.

    Shapes: ``x (B, C, L)``, ``step (B, 512)``, ``cond (B, cond_channels, L or 1)``.
    Returns ``((x + residual) / sqrt(2), skip)``, both ``(B, C, L)``.
    """

    def __init__(self, channels: int, dilation: int, kernel_size: int, step_dim: int,
                 cond_channels: int | None) -> None:
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, kernel_size,
                                      padding=dilation * (kernel_size - 1) // 2, dilation=dilation)
        self.step_projection = nn.Linear(step_dim, channels)
        self.cond_projection = nn.Conv1d(cond_channels, 2 * channels, 1) if cond_channels else None
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)
        nn.init.kaiming_normal_(self.dilated_conv.weight)
        nn.init.kaiming_normal_(self.output_projection.weight)
        if self.cond_projection is not None:
            nn.init.kaiming_normal_(self.cond_projection.weight)

    def forward(self, x: torch.Tensor, step: torch.Tensor,
                cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        y = x + self.step_projection(step).unsqueeze(-1)
        y = self.dilated_conv(y)
        if self.cond_projection is not None and cond is not None:
            y = y + self.cond_projection(cond)
        gate, filt = torch.chunk(y, 2, dim=1)
        y = torch.sigmoid(gate) * torch.tanh(filt)
        residual, skip = torch.chunk(self.output_projection(y), 2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWave(nn.Module):
    """epsilon_theta(x_t, t, condition) for audio ``x_t (B, L)``.

    Conditioning (``config.conditioning``):
        ``"mel"``: ``mel (B, n_mels, F)`` with ``L = F * hop_length``;
        ``"class"``: ``labels (B,)`` integer class indices (``config.null_label``, when the
        model was trained with label dropout, means "no label");
        ``"none"``: nothing.

    ``implementation`` (an attribute, not part of the weights) chooses how the residual
    stack runs: ``"reference"``, the modules below as the paper draws them, or ``"fused"``,
    the same function time-major as one autograd function with reused buffers
    (:mod:`wavediff.models.diffwave.fused`; the trainer's fast path).
    """

    def __init__(self, config: ModelConfig, num_steps: int, n_mels: int = 80, hop_length: int = 256,
                 level_scale: float | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_steps = num_steps
        self.n_mels = n_mels
        self.hop_length = hop_length
        C = config.residual_channels
        self.input_projection = nn.Conv1d(1, C, 1)
        nn.init.kaiming_normal_(self.input_projection.weight)
        self.step_embedding = DiffusionStepEmbedding(num_steps, config.step_embedding_dim, config.step_hidden_dim,
                                                     level_scale)
        cond_channels: int | None
        if config.conditioning == "mel":
            self.upsampler: MelUpsampler | None = MelUpsampler(hop_length, config.upsample_leaky_slope)
            self.label_embedding: LabelEmbedding | None = None
            cond_channels = n_mels
        elif config.conditioning == "class":
            self.upsampler = None
            # with label dropout, one more row: the learned "no label" of classifier-free guidance
            extra = 1 if config.null_label is not None else 0
            self.label_embedding = LabelEmbedding(config.num_classes + extra, config.label_embedding_dim)
            cond_channels = config.label_embedding_dim
        else:
            self.upsampler = None
            self.label_embedding = None
            cond_channels = None
        self.layers = nn.ModuleList(
            ResidualLayer(C, d, config.kernel_size, config.step_hidden_dim, cond_channels)
            for d in config.dilations
        )
        self.skip_projection = nn.Conv1d(C, C, 1)
        nn.init.kaiming_normal_(self.skip_projection.weight)
        self.output_projection = nn.Conv1d(C, 1, 1)
        nn.init.zeros_(self.output_projection.weight)
        nn.init.zeros_(self.output_projection.bias)
        self._implementation = "reference"
        self._workspace = StackWorkspace()

    @property
    def implementation(self) -> str:
        return self._implementation

    @implementation.setter
    def implementation(self, name: str) -> None:
        if name not in IMPLEMENTATIONS:
            raise WavediffError(f"implementation={name!r} is not allowed; choose one of {list(IMPLEMENTATIONS)}")
        self._implementation = name
        if name == "reference":
            self._workspace.clear()

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def condition(self, mel: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor | None:
        """The conditioner input of every layer: upsampled mel ``(B, n_mels, L)`` or label
        embedding ``(B, 128, 1)``; ``None`` when unconditional."""
        kind = self.config.conditioning
        if kind == "mel":
            if mel is None:
                raise WavediffError("this model is a mel-conditioned vocoder: pass mel=(B, n_mels, F)")
            if mel.dim() != 3 or mel.shape[1] != self.n_mels:
                raise WavediffError(f"mel must have shape (B, {self.n_mels}, F), got {tuple(mel.shape)}")
            assert self.upsampler is not None
            return self.upsampler(mel)
        if kind == "class":
            if labels is None:
                raise WavediffError("this model is class-conditional: pass labels=(B,)")
            if labels.dim() != 1:
                raise WavediffError(f"labels must have shape (B,), got {tuple(labels.shape)}")
            top = self.config.num_classes - 1 if self.config.null_label is None else self.config.null_label
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > top):
                raise WavediffError(f"labels must lie in 0..{top}, got {labels.tolist()}")
            assert self.label_embedding is not None
            return self.label_embedding(labels.long())
        return None

    def forward(self, audio: torch.Tensor, steps: torch.Tensor, mel: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the noise in ``audio (B, L)`` at ``steps (B,)``: 0-based (fractional) diffusion steps,
        or noise levels sqrt(abar) for a model built with ``level_scale``; returns ``(B, L)``.

        ``cond`` may carry a precomputed :meth:`condition` output (reused across steps).
        """
        if audio.dim() != 2:
            raise WavediffError(f"audio must have shape (B, L), got {tuple(audio.shape)}")
        if cond is None:
            cond = self.condition(mel=mel, labels=labels)
        if cond is not None and cond.shape[-1] not in (1, audio.shape[-1]):
            raise WavediffError(
                f"conditioner length {cond.shape[-1]} does not match audio length {audio.shape[-1]} "
                f"(mel frames x hop {self.hop_length})"
            )
        if self._implementation == "fused":
            return fused_forward(self, audio, steps, cond, self._workspace)
        x = F.relu(self.input_projection(audio.unsqueeze(1)))
        step = self.step_embedding(steps)
        skip_sum: torch.Tensor | None = None
        for layer in self.layers:
            x, skip = layer(x, step, cond)
            skip_sum = skip if skip_sum is None else skip_sum + skip
        assert skip_sum is not None
        x = skip_sum / math.sqrt(len(self.layers))
        x = F.relu(self.skip_projection(x))
        return self.output_projection(x).squeeze(1)


def build_model(config: RunConfig) -> DiffWave:
    """The denoiser described by a run config."""
    d = config.diffusion
    return DiffWave(config.model, d.num_steps, n_mels=config.mel.n_mels, hop_length=config.mel.hop_length,
                    level_scale=d.level_scale if d.noise_input == "level" else None)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(config: RunConfig) -> dict[str, Any]:
    """Parameter count and receptive field of a config's model."""
    model = build_model(config)
    return {"parameters": count_parameters(model), "receptive_field": config.model.receptive_field}
