"""Conditioning blocks of DiffWave: diffusion-step embedding, mel upsampler, labels."""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.errors import WavediffError

MAX_UPSAMPLE_STRIDE = 32


def sinusoidal_step_encoding(steps: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """DiffWave's step encoding ``[sin(10^(j*4/(h-1)) t), cos(10^(j*4/(h-1)) t)]``, j < h = dim/2.

    Args:
        steps: ``(N,)`` step values.
    Returns:
        ``(N, dim)`` encoding.
    """
    half = dim // 2
    j = torch.arange(half, dtype=torch.float64, device=steps.device)
    freqs = 10.0 ** (j * 4.0 / (half - 1))
    angles = steps.to(torch.float64).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).to(torch.float32)


def noise_level_encoding(levels: torch.Tensor, dim: int = 128, scale: float = 5000.0) -> torch.Tensor:
    """WaveGrad's encoding of a continuous noise level ``l = sqrt(abar)``: sinusoids of ``scale * l``
    at ``dim / 2`` frequencies geometric from 1e-4 to 1, i.e. :func:`sinusoidal_step_encoding` of
    ``1e-4 * scale * l``. ``(N,)`` -> ``(N, dim)``."""
    return sinusoidal_step_encoding(levels.to(torch.float64) * (scale * 1e-4), dim)


class DiffusionStepEmbedding(nn.Module):
    """Step index (or noise level) -> 512-d embedding shared by all residual layers.

    The sinusoidal encoding is tabulated at the integer steps 0..T-1 and linearly
    interpolated for fractional steps (fast sampling, Appendix B), followed by two
    fully-connected layers with swish. With ``level_scale`` the input is the continuous
    noise level sqrt(abar) instead, encoded by :func:`noise_level_encoding` (no table).
    """

    def __init__(self, num_steps: int, encoding_dim: int = 128, hidden_dim: int = 512,
                 level_scale: float | None = None) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.level_scale = level_scale
        self.encoding_dim = encoding_dim
        self.register_buffer(
            "table", sinusoidal_step_encoding(torch.arange(num_steps), encoding_dim), persistent=False
        )
        self.fc1 = nn.Linear(encoding_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, hidden_dim)

    def encode(self, steps: torch.Tensor) -> torch.Tensor:
        """``(B,)`` integer or fractional steps (noise levels with ``level_scale``) -> ``(B, encoding_dim)``."""
        if self.level_scale is not None:
            return noise_level_encoding(steps, self.encoding_dim, self.level_scale).to(self.table.dtype)
        if not steps.is_floating_point():
            return self.table[steps]
        t = steps.clamp(0, self.num_steps - 1)
        lo = t.floor().long()
        hi = torch.clamp(lo + 1, max=self.num_steps - 1)
        w = (t - lo.to(t.dtype)).unsqueeze(1).to(self.table.dtype)
        return self.table[lo] * (1 - w) + self.table[hi] * w

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        """``(B,)`` steps -> ``(B, hidden_dim)``."""
        x = F.silu(self.fc1(self.encode(steps)))
        return F.silu(self.fc2(x))


def factorize_hop(hop_length: int, max_stride: int = MAX_UPSAMPLE_STRIDE) -> list[int]:
    """Split the hop into upsampling strides, each at most ``max_stride``.

    Two stages are preferred (as the paper's 16 x 16 for hop 256), as balanced as
    possible: 160 -> [10, 16], 300 -> [15, 20]. A hop that is prime and larger than
    ``max_stride``, or needs more than four stages, is rejected.
    """
    if hop_length < 1:
        raise WavediffError(f"hop_length={hop_length} must be >= 1")
    if hop_length == 1:
        return []
    for n_stages in (2, 1, 3, 4):
        best: list[int] | None = None
        for combo in itertools.combinations_with_replacement(range(2, max_stride + 1), n_stages):
            if math.prod(combo) == hop_length and (best is None or max(combo) < max(best)):
                best = list(combo)
        if best is not None:
            return best
    raise WavediffError(
        f"hop_length={hop_length} cannot be factored into at most 4 upsampling strides of 2..{max_stride}; "
        f"choose a hop whose prime factors are all <= {max_stride} (e.g. 160, 200, 240, 256, 300)"
    )


def transposed_conv_stage(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                          padding: int) -> torch.Tensor:
    """``F.conv_transpose2d(x[:, None], weight, bias, stride=(1, stride), padding=(pf, padding))[:, 0]``
    for one channel, computed as one GEMM over polyphase patches.

    ``x (B, M, F)``; ``weight (1, 1, Kf, Kt)`` with an odd ``Kf = 2 pf + 1``; ``bias (1,)``;
    returns ``(B, M, F * stride)`` when ``Kt - 2 padding == stride``. Output sample
    ``f * stride + r`` of band ``m`` is the sum over freq tap ``j`` and frame offset ``q`` of
    ``x[m + pf - j, f - q] * weight[j, r + padding + q * stride]`` (zero where the tap index
    leaves the kernel): a patch of ``Kf x Q`` inputs (Q = 3 frame offsets for the
    upsampler's kernels) times a ``(Kf Q, stride)`` matrix gathered from the kernel. torch's
    single-channel transposed 2-D convolution took 3.5x longer, forward and backward, at
    ``base``'s training batch on the development machine (docs/training-speed.md)."""
    B, M, frames = x.shape
    kf, kt = weight.shape[-2:]
    pf = (kf - 1) // 2
    q_lo = -((stride - 1 + padding) // stride)        # frame offsets q with a tap inside the kernel
    q_hi = (kt - 1 - padding) // stride
    offsets = range(q_lo, q_hi + 1)
    xp = F.pad(x, (q_hi, -q_lo, pf, pf))
    patches = torch.stack([xp[:, 2 * pf - j:2 * pf - j + M, q_hi - q:q_hi - q + frames]
                           for j in range(kf) for q in offsets]).view(kf * len(offsets), -1)   # (Kf Q, B M F)
    r = torch.arange(stride, device=x.device)
    taps = torch.stack([r + padding + q * stride for q in offsets])                  # (Q, stride)
    inside = (taps >= 0) & (taps < kt)
    w = weight.reshape(kf, kt)[:, taps.clamp(0, kt - 1)] * inside                  # (Kf, Q, stride)
    w = w.reshape(kf * len(offsets), stride)
    y = torch.addmm(bias.to(patches.dtype), patches.t(), w.to(patches.dtype))      # (B M F, stride)
    return y.view(B, M, frames * stride)


class MelUpsampler(nn.Module):
    """Mel ``(B, n_mels, F)`` -> ``(B, n_mels, F * hop)`` by transposed 2-D convolutions.

    Each stage with stride s in time has a kernel of 3 (frequency) x 2s (time), as the
    paper's 3 x 32 for s = 16, followed by leaky ReLU (slope 0.4). The parameters are the
    stages' ``ConvTranspose2d`` modules; the forward pass computes the same function by
    :func:`transposed_conv_stage`.
    """

    def __init__(self, hop_length: int, leaky_slope: float = 0.4) -> None:
        super().__init__()
        self.hop_length = hop_length
        self.strides = factorize_hop(hop_length)
        self.leaky_slope = leaky_slope
        layers = []
        for s in self.strides:
            # Output length (F - 1) s - 2p + k must be F s: k - 2p = s.
            pad = (s + 1) // 2
            kernel = s + 2 * pad
            layers.append(nn.ConvTranspose2d(1, 1, (3, kernel), stride=(1, s), padding=(1, pad)))
        self.stages = nn.ModuleList(layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel
        for stage, s in zip(self.stages, self.strides):
            x = F.leaky_relu(transposed_conv_stage(x, stage.weight, stage.bias, s, stage.padding[1]),
                             self.leaky_slope)
        return x


class LabelEmbedding(nn.Module):
    """Class label ``(B,)`` -> ``(B, dim, 1)`` global conditioning vector."""

    def __init__(self, num_classes: int, dim: int = 128) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding(labels).unsqueeze(-1)
