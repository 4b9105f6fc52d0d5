"""WaveNet's autoregressive generation: the naive loop (the full forward over the last receptive
field per sample, the reference) and incremental generation with per-layer queues."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from wavediff.models.wavenet.mol import mol_sample
from wavediff.models.wavenet.network import IncrementalState, WaveNet


def draw(net: WaveNet, outputs: torch.Tensor, generator: torch.Generator | None, temperature: float) -> torch.Tensor:
    """One sample per row of ``outputs (B, output_channels)``: a class (``mulaw``, softmax of
    ``logits / temperature``; ``temperature=0`` takes the most likely) or audio (``mol``)."""
    if net.config.output == "mol":
        return mol_sample(outputs.unsqueeze(-1), net.config.mixtures, generator, max(temperature, 1e-6))[:, 0]
    if temperature == 0:
        return outputs.argmax(dim=1)
    return torch.multinomial(F.softmax(outputs / temperature, dim=1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(net: WaveNet, length: int, *, batch: int = 1, mel: torch.Tensor | None = None,
             label: torch.Tensor | None = None, generator: torch.Generator | None = None,
             temperature: float = 1.0, naive: bool = False) -> torch.Tensor:
    """``(B, length)`` float audio drawn sample by sample. ``mel (B, n_mels, F)`` / ``label (B,)``
    condition it (their batch sets ``B``). ``naive``: recompute the full forward over the last
    receptive field for every sample (the reference for the incremental path)."""
    if mel is not None:
        batch = mel.shape[0]
    elif label is not None:
        batch = label.shape[0]
    device = next(net.parameters()).device
    cond = net.conditioning(length, mel, label)
    inputs = net.start_input(batch, device)
    samples = []
    if naive:
        history = inputs.unsqueeze(1)
        field = net.receptive_field
        for t in range(length):
            start = max(0, t + 1 - field)
            window = history[:, start:t + 1]
            out = net.layers_forward(window, None if cond is None else cond[..., start:t + 1])[..., -1]
            sample = draw(net, out, generator, temperature)
            samples.append(sample)
            history = torch.cat([history, sample.unsqueeze(1).to(history.dtype)], dim=1)
    else:
        state = IncrementalState(net, batch, cond)
        for _ in range(length):
            sample = draw(net, state.step(inputs), generator, temperature)
            samples.append(sample)
            inputs = sample
    return net.to_audio(torch.stack(samples, dim=1))
