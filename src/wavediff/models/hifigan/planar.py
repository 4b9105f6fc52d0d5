"""HiFi-GAN's generator for CPU inference: every 1-D convolution run as a 2-D one over a
``(B, C, 1, L)`` channels-last tensor.

On x86 CPUs torch hands a channels-last 2-D convolution to oneDNN's blocked kernels (AMX or
AVX-512 for bf16), while a 1-D convolution over ``(B, C, L)`` takes a much slower path: on the
project's 2-core machine a layer of the last stages runs 4 to 20 times faster planar in bf16, the
whole generator (20 s, windows of 256 frames) 2.2 to 4.9 times faster in bf16 and 1.4 to 1.8
times in fp32 (docs/results.md, "HiFi-GAN vocoding speed"). The weights are the folded
generator's, reshaped ``(out, in, k) -> (out, in, 1, k)``: the arithmetic is the same, so the
output equals the 1-D generator's within float rounding (tested against the training module's
generator).
"""
from __future__ import annotations

import torch
from torch import nn

from wavediff.models.hifigan.network import HiFiGANGenerator, folded_copy


def _planar_conv(conv: nn.Conv1d | nn.ConvTranspose1d) -> nn.Conv2d | nn.ConvTranspose2d:
    """The 2-D convolution with a ``(1, k)`` kernel that computes ``conv`` along the last axis
    of a ``(B, C, 1, L)`` tensor; its weight channels-last."""
    kernel, padding = (1, conv.kernel_size[0]), (0, conv.padding[0])
    if isinstance(conv, nn.ConvTranspose1d):
        planar: nn.Module = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, kernel,
                                               stride=(1, conv.stride[0]), padding=padding,
                                               bias=conv.bias is not None)
    else:
        planar = nn.Conv2d(conv.in_channels, conv.out_channels, kernel, stride=(1, conv.stride[0]), padding=padding,
                           dilation=(1, conv.dilation[0]), bias=conv.bias is not None)
    planar = planar.to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        planar.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            planar.bias.copy_(conv.bias)
    planar.weight.data = planar.weight.data.contiguous(memory_format=torch.channels_last)
    return planar


def _make_planar(module: nn.Module) -> nn.Module:
    """``module`` with every ``Conv1d`` / ``ConvTranspose1d`` below it replaced (in place)."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)):
            setattr(module, name, _planar_conv(child))
        else:
            _make_planar(child)
    return module


class PlanarGenerator(nn.Module):
    """A folded copy of ``generator`` whose convolutions run planar and channels-last: mel
    ``(B, n_mels, F)`` -> waveform ``(B, F * hop)``, as :class:`HiFiGANGenerator`. It has the
    ``config``, ``n_mels`` and ``hop_length`` the windows need. ``generator`` is left as it is."""

    def __init__(self, generator: HiFiGANGenerator) -> None:
        super().__init__()
        self.config = generator.config
        self.n_mels = generator.n_mels
        self.hop_length = generator.hop_length
        self.network = _make_planar(folded_copy(generator))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.network(mel.unsqueeze(2).contiguous(memory_format=torch.channels_last))
