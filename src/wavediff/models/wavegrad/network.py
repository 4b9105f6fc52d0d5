"""The WaveGrad denoiser (Chen et al., ICLR 2021, Section 3 and Figures 3-6).

The mel ``(B, n_mels, F)`` climbs to the waveform's rate through UBlocks, one per upsampling
factor; the noisy waveform ``(B, L)`` descends through DBlocks by the same factors in reverse.
At each resolution a FiLM module reads the descending path and the noise level and returns a
scale and a shift that modulate the UBlock working at that resolution. The network predicts
the noise ``(B, L)``.

Resampling is by repetition (up) and by taking every ``factor``-th sample (down), as nearest-
neighbour interpolation does in the public implementations.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.config import RunConfig, WaveGradConfig
from wavediff.errors import WavediffError
from wavediff.models.diffwave.conditioning import noise_level_encoding


def _conv(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Conv1d:
    conv = nn.Conv1d(cin, cout, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
    nn.init.orthogonal_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FiLM(nn.Module):
    """Features ``(B, C_in, L)`` and noise levels ``(B,)`` -> ``(scale, shift)``, each ``(B, C_out, L)``:
    a convolution, the level's sinusoidal encoding added along the channels, a convolution."""

    def __init__(self, cin: int, cout: int, level_scale: float, slope: float) -> None:
        super().__init__()
        if cin % 2:
            raise WavediffError(f"a FiLM input of {cin} channels cannot hold the level's sin and cos halves; "
                                "make wavegrad.downsample_channels even")
        self.inner = _conv(cin, cin, 3)
        self.outer = _conv(cin, 2 * cout, 3)
        self.level_scale, self.slope = level_scale, slope

    def forward(self, h: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.inner(h), self.slope)
        enc = noise_level_encoding(levels, h.shape[1], self.level_scale).to(device=h.device, dtype=h.dtype)
        scale, shift = self.outer(h + enc.unsqueeze(-1)).chunk(2, dim=1)
        return scale, shift


class UBlock(nn.Module):
    """``(B, C_in, n)`` -> ``(B, C_out, n * factor)``, modulated by a FiLM's ``(scale, shift)``
    at the output rate: a repeated-and-projected shortcut beside two dilated convolutions, then
    two more with a residual path."""

    def __init__(self, cin: int, cout: int, factor: int, dilations: tuple[int, ...], slope: float) -> None:
        super().__init__()
        self.factor, self.slope = factor, slope
        self.shortcut = _conv(cin, cout, 1)
        self.convs = nn.ModuleList([_conv(cin, cout, 3, dilations[0])] +
                                   [_conv(cout, cout, 3, d) for d in dilations[1:]])

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        up = x.repeat_interleave(self.factor, dim=-1)
        skip = self.shortcut(up)
        h = self.convs[0](F.leaky_relu(x, self.slope).repeat_interleave(self.factor, dim=-1))
        h = self.convs[1](F.leaky_relu(scale * h + shift, self.slope))
        s = skip + h
        h = self.convs[2](F.leaky_relu(scale * s + shift, self.slope))
        h = self.convs[3](F.leaky_relu(scale * h + shift, self.slope))
        return s + h


class DBlock(nn.Module):
    """``(B, C_in, n)`` -> ``(B, C_out, n / factor)``: every ``factor``-th sample, a projected
    shortcut beside three dilated convolutions (dilations 1, 2, 4)."""

    def __init__(self, cin: int, cout: int, factor: int, slope: float) -> None:
        super().__init__()
        self.factor, self.slope = factor, slope
        self.shortcut = _conv(cin, cout, 1)
        self.convs = nn.ModuleList([_conv(cin, cout, 3, 1), _conv(cout, cout, 3, 2), _conv(cout, cout, 3, 4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., ::self.factor]
        h = x
        for conv in self.convs:
            h = conv(F.leaky_relu(h, self.slope))
        return self.shortcut(x) + h


class WaveGrad(nn.Module):
    """epsilon_theta(y_n, sqrt(abar), mel): ``forward(audio (B, L), levels (B,), mel (B, n_mels, F))``
    with ``L = F * hop`` -> ``(B, L)`` predicted noise (see the module)."""

    def __init__(self, config: WaveGradConfig, n_mels: int, level_scale: float = 5000.0) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        slope = config.leaky_slope
        factors, up_ch, down_ch = config.upsample_factors, config.upsample_channels, config.downsample_channels
        self.mel_conv = _conv(n_mels, config.mel_channels, 3)
        cin = config.mel_channels
        self.ublocks = nn.ModuleList()
        for factor, cout, dil in zip(factors, up_ch, config.upsample_dilations):
            self.ublocks.append(UBlock(cin, cout, factor, dil, slope))
            cin = cout
        self.output_conv = _conv(cin, 1, 3)
        # the descending path: its first convolution at the waveform's rate, then one DBlock per factor
        # but the first, by the factors in reverse; resolution k (from the waveform up) feeds UBlock n - 1 - k
        self.audio_conv = _conv(1, down_ch[0], 5)
        self.dblocks = nn.ModuleList([DBlock(down_ch[k], down_ch[k + 1], factors[-1 - k], slope)
                                      for k in range(len(factors) - 1)])
        self.films = nn.ModuleList([FiLM(down_ch[k], up_ch[-1 - k], level_scale, slope) for k in range(len(factors))])

    def forward(self, audio: torch.Tensor, levels: torch.Tensor, mel: torch.Tensor | None = None,
                **_: Any) -> torch.Tensor:
        if audio.dim() != 2 or mel is None or mel.dim() != 3:
            raise WavediffError(f"WaveGrad takes audio (B, L) and mel (B, n_mels, F); got audio "
                                f"{tuple(audio.shape)}, mel {None if mel is None else tuple(mel.shape)}")
        if audio.shape[-1] != mel.shape[-1] * self.hop_length:
            raise WavediffError(f"audio of {audio.shape[-1]} samples does not match a mel of {mel.shape[-1]} frames "
                                f"x hop {self.hop_length}")
        levels = levels.to(audio.device).reshape(-1)
        if levels.numel() == 1 and audio.shape[0] > 1:
            levels = levels.expand(audio.shape[0])
        h = self.audio_conv(audio.unsqueeze(1))
        modulations = [self.films[0](h, levels)]
        for k, block in enumerate(self.dblocks):
            h = block(h)
            modulations.append(self.films[k + 1](h, levels))
        x = self.mel_conv(mel)
        for block, (scale, shift) in zip(self.ublocks, reversed(modulations)):
            x = block(x, scale, shift)
        return self.output_conv(F.leaky_relu(x, self.config.leaky_slope))[:, 0]


def build_wavegrad(config: RunConfig) -> WaveGrad:
    """The WaveGrad a run config describes."""
    return WaveGrad(config.wavegrad, config.mel.n_mels, config.diffusion.level_scale)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
