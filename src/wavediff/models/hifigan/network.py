"""HiFi-GAN's generator (Kong, Kim and Bae, NeurIPS 2020, Section 2.1 and Appendix A).

A mel ``(B, n_mels, F)`` goes through a 7-tap convolution to ``initial_channels``; each
upsampling stage is a leaky ReLU and a transposed convolution (stride = the stage's rate,
channels halved) followed by a multi-receptive-field fusion (MRF): the mean of residual blocks
of different kernel sizes and dilations. A leaky ReLU, a 7-tap convolution to one channel and
``tanh`` give the waveform ``(B, F * hop)``. Every convolution is weight-normalised
(:func:`torch.nn.utils.parametrizations.weight_norm`); :func:`fold_weight_norm` bakes the
normalisation into plain weights for inference.

Residual block 1 (V1, V2): per dilation ``d``, ``x + conv_1(lrelu(conv_d(lrelu(x))))``.
Residual block 2 (V3): per dilation ``d``, ``x + conv_d(lrelu(x))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from wavediff.config import HiFiGANConfig

# the slope of the leaky ReLU before the output convolution (the authors' code uses torch's
# default there, not the 0.1 of every other activation)
OUTPUT_LEAKY_SLOPE = 0.01
INIT_STD = 0.01   # weights drawn from N(0, 0.01^2) before weight normalisation, as the authors do


def _same_padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


def _normal_init(conv: nn.Module) -> nn.Module:
    nn.init.normal_(conv.weight, 0.0, INIT_STD)
    return conv


class ResidualBlock(nn.Module):
    """One residual block of the MRF: ``(B, C, L) -> (B, C, L)``. ``kind`` 1 has a dilated and a
    plain convolution per dilation, ``kind`` 2 one dilated convolution."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...], kind: int, slope: float) -> None:
        super().__init__()
        self.kind, self.slope = kind, slope
        self.dilated = nn.ModuleList(
            weight_norm(_normal_init(nn.Conv1d(channels, channels, kernel, dilation=d,
                                               padding=_same_padding(kernel, d)))) for d in dilations)
        self.plain = nn.ModuleList(
            weight_norm(_normal_init(nn.Conv1d(channels, channels, kernel, padding=_same_padding(kernel, 1))))
            for _ in dilations) if kind == 1 else nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.dilated):
            y = conv(F.leaky_relu(x, self.slope))
            if self.kind == 1:
                y = self.plain[i](F.leaky_relu(y, self.slope))
            x = x + y
        return x


class HiFiGANGenerator(nn.Module):
    """Mel ``(B, n_mels, F)`` -> waveform ``(B, F * hop)`` in [-1, 1], ``hop = prod(upsample_rates)``."""

    def __init__(self, n_mels: int, config: HiFiGANConfig) -> None:
        super().__init__()
        self.config = config
        self.n_mels = n_mels
        self.hop_length = config.hop_length
        c = config.initial_channels
        self.input_conv = weight_norm(nn.Conv1d(n_mels, c, 7, padding=3))
        self.upsamplers = nn.ModuleList()
        self.fusions = nn.ModuleList()
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernels):
            self.upsamplers.append(weight_norm(_normal_init(
                nn.ConvTranspose1d(c, c // 2, kernel, stride=rate, padding=(kernel - rate) // 2))))
            c //= 2
            self.fusions.append(nn.ModuleList(
                ResidualBlock(c, k, d, config.resblock, config.leaky_slope)
                for k, d in zip(config.resblock_kernels, config.resblock_dilations)))
        self.output_conv = weight_norm(_normal_init(nn.Conv1d(c, 1, 7, padding=3)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        frames = mel.shape[-1]
        x = self.input_conv(mel)
        for upsample, blocks in zip(self.upsamplers, self.fusions):
            x = upsample(F.leaky_relu(x, self.config.leaky_slope))
            x = sum(block(x) for block in blocks) / len(blocks)
        x = torch.tanh(self.output_conv(F.leaky_relu(x, OUTPUT_LEAKY_SLOPE)))
        # an odd kernel - rate difference adds a sample at a stage; the output keeps F * hop.
        # (B, 1, L) here, or (B, 1, 1, L) when the convolutions were made planar (planar.py)
        return x.flatten(1)[:, :frames * self.hop_length]


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """``module`` with every weight normalisation replaced by its plain weight ``g v / ||v||``
    (in place; the output is unchanged). Returns ``module``."""
    for sub in module.modules():
        if parametrize.is_parametrized(sub, "weight"):
            parametrize.remove_parametrizations(sub, "weight", leave_parametrized=True)
    return module


def folded_copy(generator: HiFiGANGenerator) -> HiFiGANGenerator:
    """A new generator with ``generator``'s weights and the weight norm folded; ``generator`` is
    left as it is. (Not ``copy.deepcopy``: a deep copy shares torch's parametrised module classes,
    and folding it breaks the original's ``weight``.)"""
    fresh = HiFiGANGenerator(generator.n_mels, generator.config).to(next(generator.parameters()).device)
    state = generator.state_dict()
    if not any(parametrize.is_parametrized(m, "weight") for m in generator.modules()):
        fold_weight_norm(fresh)      # already folded: plain weights load into a folded copy
        fresh.load_state_dict(state)
        return fresh
    fresh.load_state_dict(state)
    return fold_weight_norm(fresh)


def weight_normed(generator: HiFiGANGenerator) -> HiFiGANGenerator:
    """A new generator with ``generator``'s weights under weight normalisation, as training
    builds it; a folded generator's plain weights ``w`` become ``v = w``, ``g = ||w||`` per
    output channel (the output is unchanged up to rounding)."""
    fresh = HiFiGANGenerator(generator.n_mels, generator.config)
    if any(parametrize.is_parametrized(m, "weight") for m in generator.modules()):
        fresh.load_state_dict(generator.state_dict())
        return fresh
    fold_weight_norm(fresh)
    fresh.load_state_dict(generator.state_dict())
    for module in fresh.modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            weight_norm(module)
    return fresh


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
