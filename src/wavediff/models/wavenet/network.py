"""WaveNet's network: causal dilated convolutions, gated units, residual and skip paths, global
(label) and local (mel) conditioning, and a softmax or mixture-of-logistics head.

Teacher-forced, the network maps the input samples ``x[0..L-1]`` to one prediction per position,
the prediction at ``t`` depending on ``x[t - R + 1 .. t]`` only (``R`` the receptive field) and
naming the distribution of the *next* sample ``x[t + 1]``. :class:`IncrementalState` runs the
same arithmetic one sample at a time with a queue of past inputs per layer (Fast WaveNet, Paine
et al. 2016): O(layers) work per sample instead of O(receptive field).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wavediff.config import WaveNetConfig
from wavediff.models.diffwave.conditioning import MelUpsampler
from wavediff.models.wavenet.mulaw import mulaw_decode, mulaw_encode

RESIDUAL_SCALE = math.sqrt(0.5)
"""Each residual sum is scaled by sqrt(1/2) to keep its variance, as in DiffWave's network."""


class WaveNetLayer(nn.Module):
    """One residual layer: dilated causal convolution ``(C_res -> C_gate)``, conditioning added,
    ``tanh(a) * sigmoid(b)`` over the two halves, then 1x1 convolutions to the residual and skip paths."""

    def __init__(self, config: WaveNetConfig, dilation: int, cond_channels: int) -> None:
        super().__init__()
        self.dilation, self.kernel_size = dilation, config.kernel_size
        self.conv = nn.Conv1d(config.residual_channels, config.gate_channels, config.kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cond_channels, config.gate_channels, 1, bias=False) if cond_channels else None
        half = config.gate_channels // 2
        self.residual = nn.Conv1d(half, config.residual_channels, 1)
        self.skip = nn.Conv1d(half, config.skip_channels, 1)

    @property
    def context(self) -> int:
        """Past inputs the convolution reads besides the current one."""
        return (self.kernel_size - 1) * self.dilation

    def gate(self, z: torch.Tensor) -> torch.Tensor:
        a, b = z.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, C_res, L)``, ``cond (B, C_cond, L)`` -> (residual output, skip), both ``(B, C, L)``."""
        z = self.conv(F.pad(x, (self.context, 0)))
        if self.cond is not None and cond is not None:
            z = z + self.cond(cond)
        h = self.gate(z)
        return (x + self.residual(h)) * RESIDUAL_SCALE, self.skip(h)


class WaveNet(nn.Module):
    """Inputs ``(B, L)`` -> ``(B, output_channels, L)``: logits over mu-law classes (``mulaw``) or
    mixture parameters (``mol``) of each next sample.

    ``n_mels``: local conditioning by a mel ``(B, n_mels, F)`` upsampled ``hop_length`` times to the
    samples (DiffWave's transposed-convolution upsampler); ``num_classes``: global conditioning by a
    label ``(B,)``. Inputs are int64 classes for ``mulaw`` and float audio in [-1, 1] for ``mol``.
    """

    def __init__(self, config: WaveNetConfig, n_mels: int | None = None, hop_length: int | None = None,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.n_mels, self.hop_length, self.num_classes = n_mels, hop_length, num_classes
        c = config.residual_channels
        self.input = (nn.Embedding(config.quantization_channels, c) if config.output == "mulaw"
                      else nn.Conv1d(1, c, 1))
        self.upsampler = MelUpsampler(hop_length) if n_mels else None
        self.label_embedding = nn.Embedding(num_classes, config.label_embedding_dim) if num_classes else None
        cond_channels = (n_mels or 0) + (config.label_embedding_dim if num_classes else 0)
        self.layers = nn.ModuleList(WaveNetLayer(config, d, cond_channels) for d in config.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(config.skip_channels, config.skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(config.skip_channels, config.output_channels, 1))

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` classes or audio -> ``(B, C_res, L)``."""
        if self.config.output == "mulaw":
            return self.input(inputs).transpose(1, 2)
        return self.input(inputs.unsqueeze(1).to(self.input.weight.dtype))

    def conditioning(self, length: int, mel: torch.Tensor | None = None,
                     label: torch.Tensor | None = None) -> torch.Tensor | None:
        """The per-sample conditioning ``(B, C_cond, length)``: the upsampled mel and the label's
        embedding stacked on channels, or ``None`` for an unconditional model."""
        parts = []
        if self.upsampler is not None:
            if mel is None:
                raise ValueError("this WaveNet is mel-conditioned: give mel (B, n_mels, F)")
            up = self.upsampler(mel)
            if up.shape[-1] < length:
                raise ValueError(f"a mel of {mel.shape[-1]} frames gives {up.shape[-1]} samples, fewer than {length}")
            parts.append(up[..., :length])
        if self.label_embedding is not None:
            if label is None:
                raise ValueError("this WaveNet is class-conditioned: give label (B,)")
            parts.append(self.label_embedding(label).unsqueeze(-1).expand(-1, -1, length))
        return torch.cat(parts, dim=1) if parts else None

    UPSAMPLER_REACH_FRAMES = 2
    """Mel frames beyond a span that its upsampled samples can depend on (each transposed stage
    of stride ``s`` and kernel ``2 s`` reaches one input step to either side)."""

    def conditioning_span(self, start: int, length: int, mel: torch.Tensor | None = None,
                          label: torch.Tensor | None = None) -> torch.Tensor | None:
        """``conditioning(...)[..., start:start + length]`` computed from the mel frames around
        the span only, so a long utterance is never upsampled whole."""
        if self.upsampler is None or mel is None:
            full = self.conditioning(start + length, mel, label)
            return None if full is None else full[..., start:start + length]
        hop, reach = self.hop_length, self.UPSAMPLER_REACH_FRAMES
        f0 = max(0, start // hop - reach)
        f1 = min(mel.shape[-1], -(-(start + length) // hop) + reach)
        if f1 * hop < start + length:
            raise ValueError(f"a mel of {mel.shape[-1]} frames gives {mel.shape[-1] * hop} samples, fewer than "
                             f"{start + length}")
        window = self.conditioning((f1 - f0) * hop, mel[..., f0:f1], label)
        offset = start - f0 * hop
        return window[..., offset:offset + length]

    def forward(self, inputs: torch.Tensor, mel: torch.Tensor | None = None,
                label: torch.Tensor | None = None) -> torch.Tensor:
        return self.layers_forward(inputs, self.conditioning(inputs.shape[-1], mel, label))

    def layers_forward(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """:meth:`forward` given the per-sample conditioning ``(B, C_cond, L)`` (or ``None``)."""
        x = self.embed(inputs)
        skips = 0
        for layer in self.layers:
            x, skip = layer(x, cond)
            skips = skips + skip
        return self.head(skips * math.sqrt(1.0 / len(self.layers)))

    def start_input(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The input before the first sample (silence): ``(B,)``."""
        if self.config.output == "mulaw":
            return mulaw_encode(torch.zeros(batch, device=device), self.config.quantization_channels)
        return torch.zeros(batch, device=device)

    def teacher_inputs(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio ``(B, L)`` -> the inputs whose prediction at ``t`` is of ``audio[:, t]``: the
        encoded audio shifted one sample right behind :meth:`start_input`."""
        start = self.start_input(audio.shape[0], audio.device).unsqueeze(1)
        encoded = (mulaw_encode(audio, self.config.quantization_channels) if self.config.output == "mulaw"
                   else audio)
        return torch.cat([start.to(encoded.dtype), encoded[:, :-1]], dim=1)

    def to_audio(self, samples: torch.Tensor) -> torch.Tensor:
        """Drawn samples (classes or audio) -> float audio."""
        if self.config.output == "mulaw":
            return mulaw_decode(samples, self.config.quantization_channels)
        return samples.float()


class IncrementalState:
    """One-sample-at-a-time evaluation of ``net`` with a queue of past inputs per layer.

    ``cond (B, C_cond, L)`` is the whole conditioning (:meth:`WaveNet.conditioning`), read one
    column per step. :meth:`step` takes the inputs at position ``t`` ``(B,)`` and returns the
    outputs at ``t`` ``(B, output_channels)``, equal to ``net(inputs)[..., t]`` up to float rounding.
    """

    def __init__(self, net: WaveNet, batch: int, cond: torch.Tensor | None = None) -> None:
        self.net, self.cond, self.t = net, cond, 0
        p = next(net.parameters())
        c = net.config.residual_channels
        # layer i's inputs of the last context + 1 steps, input t in column t % (context + 1)
        self.queues = [torch.zeros(batch, c, layer.context + 1, device=p.device, dtype=p.dtype)
                       for layer in net.layers]
        self.scale = math.sqrt(1.0 / len(net.layers))

    @torch.no_grad()
    def step(self, inputs: torch.Tensor) -> torch.Tensor:
        net, t = self.net, self.t
        x = net.embed(inputs.unsqueeze(1))[..., 0]                   # (B, C_res)
        cond = self.cond[..., t] if self.cond is not None else None
        skips = 0
        for layer, queue in zip(net.layers, self.queues):
            span = layer.context + 1
            queue[..., t % span] = x
            # the kernel's taps read x[t - (k-1-j) * d] for j = 0 .. k-1
            taps = torch.stack([queue[..., (t - (layer.kernel_size - 1 - j) * layer.dilation) % span]
                                for j in range(layer.kernel_size)], dim=-1)          # (B, C_res, k)
            z = torch.einsum("bck,ock->bo", taps, layer.conv.weight) + layer.conv.bias
            if layer.cond is not None and cond is not None:
                z = z + cond @ layer.cond.weight[..., 0].T
            h = layer.gate(z.unsqueeze(-1))[..., 0]
            skips = skips + F.linear(h, layer.skip.weight[..., 0], layer.skip.bias)
            x = (x + F.linear(h, layer.residual.weight[..., 0], layer.residual.bias)) * RESIDUAL_SCALE
        self.t += 1
        return net.head((skips * self.scale).unsqueeze(-1))[..., 0]
