"""HiFi-GAN's discriminators (Kong, Kim and Bae 2020, Section 2.2): the multi-period
discriminator (MPD) and the multi-scale discriminator (MSD, from MelGAN).

Each sub-discriminator maps audio ``(B, L)`` to flattened logits ``(B, N)`` and the feature
maps of its layers (for the feature-matching loss). A period discriminator folds the audio
into ``(B, 1, L / p, p)`` (reflect-padding ``L`` up to a multiple of ``p``) and runs 2-D
convolutions of width 1, so each column sees every ``p``-th sample. The scale discriminators
run grouped 1-D convolutions on the audio, on it average-pooled by 2 and by 4; the first uses
spectral normalisation, the others weight normalisation. ``width`` scales every channel count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from wavediff.config import HiFiGANConfig

Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]   # logits per sub-discriminator, their features


def fold_periods(audio: torch.Tensor, period: int) -> torch.Tensor:
    """``(B, L)`` -> ``(B, 1, ceil(L / period), period)``: row ``i`` holds samples ``i*period ...
    i*period + period - 1``; ``L`` is first reflect-padded up to a multiple of ``period``."""
    extra = (-audio.shape[-1]) % period
    if extra:
        audio = F.pad(audio.unsqueeze(1), (0, extra), mode="reflect").squeeze(1)
    return audio.reshape(audio.shape[0], 1, -1, period)


def _channels(base: int, width: float) -> int:
    return max(1, round(base * width))


def _run_layers(convs: nn.ModuleList, output_conv: nn.Module, x: torch.Tensor,
                slope: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Each convolution then a leaky ReLU, then the output convolution: the flattened logits
    and every layer's feature map (the output's included)."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        features.append(x)
    x = output_conv(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """One MPD branch: five (5, 1) convolutions, strides (3, 1) but the last, then a (3, 1) one."""

    def __init__(self, period: int, width: float, slope: float) -> None:
        super().__init__()
        self.period, self.slope = period, slope
        sizes = [1] + [_channels(c, width) for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(sizes[i], sizes[i + 1], (5, 1), (3 if i < 4 else 1, 1), padding=(2, 0)))
            for i in range(5))
        self.output_conv = weight_norm(nn.Conv2d(sizes[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run_layers(self.convs, self.output_conv, fold_periods(audio, self.period), self.slope)


class ScaleDiscriminator(nn.Module):
    """One MSD branch: grouped strided 1-D convolutions (MelGAN's), then a 3-tap output convolution."""

    LAYERS = ((128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16), (1024, 41, 4, 16),
              (1024, 41, 1, 16), (1024, 5, 1, 1))   # (channels, kernel, stride, groups)

    def __init__(self, width: float, slope: float, spectral: bool) -> None:
        super().__init__()
        self.slope = slope
        norm = spectral_norm if spectral else weight_norm
        convs, c_in = [], 1
        for c, k, s, g in self.LAYERS:
            c_out = _channels(c, width)
            convs.append(norm(nn.Conv1d(c_in, c_out, k, s, groups=g, padding=(k - 1) // 2)))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.output_conv = norm(nn.Conv1d(c_in, 1, 3, 1, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run_layers(self.convs, self.output_conv, audio.unsqueeze(1), self.slope)


def pool_scale(audio: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` -> ``(B, L // 2 + 1)``: the MSD's average pooling (window 4, stride 2, two zeros
    of padding each side counted in the mean)."""
    return F.avg_pool1d(audio.unsqueeze(1), 4, 2, padding=2).squeeze(1)


class HiFiGANDiscriminators(nn.Module):
    """The MPD (one branch per period) and the MSD (``scales`` branches, each on audio pooled
    once more than the last); ``forward(audio (B, L))`` returns the logits and features of all."""

    def __init__(self, config: HiFiGANConfig) -> None:
        super().__init__()
        w, slope = config.discriminator_width, config.leaky_slope
        self.periods = nn.ModuleList(PeriodDiscriminator(p, w, slope) for p in config.periods)
        self.scales = nn.ModuleList(ScaleDiscriminator(w, slope, spectral=i == 0) for i in range(config.scales))

    def forward(self, audio: torch.Tensor) -> Outputs:
        logits, features = [], []
        for branch in self.periods:
            out, feats = branch(audio)
            logits.append(out)
            features.append(feats)
        x = audio
        for i, branch in enumerate(self.scales):
            if i:
                x = pool_scale(x)
            out, feats = branch(x)
            logits.append(out)
            features.append(feats)
        return logits, features
