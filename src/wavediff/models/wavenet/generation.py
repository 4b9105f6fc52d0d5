"""WaveNet's autoregressive generation: the naive loop (the full forward over the last receptive
field per sample, the reference), incremental generation with per-layer queues in torch, and
the same in native code (:mod:`wavediff.models.wavenet.native`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from wavediff.models.wavenet import native
from wavediff.models.wavenet.mol import mol_sample
from wavediff.models.wavenet.network import IncrementalState, WaveNet

IMPLEMENTATIONS = ("auto", "native", "torch", "naive")
"""``native``: the C kernel (float32 CPU models); ``torch``: :class:`IncrementalState`;
``naive``: the full forward per sample; ``auto``: native where it runs, else torch."""

NATIVE_CHUNK = 1024
"""Samples per native call: the conditioning is projected for this many at a time (1024 ran
faster than 256 or 4096 on the 2-core development machine: the projection stays in cache)."""


Generators = torch.Generator | Sequence[torch.Generator] | None
"""One generator for all rows, or one per row (each row's draws then depend on its generator alone)."""


def draw(net: WaveNet, outputs: torch.Tensor, generator: Generators, temperature: float) -> torch.Tensor:
    """One sample per row of ``outputs (B, output_channels)``: a class (``mulaw``, softmax of
    ``logits / temperature``; ``temperature=0`` takes the most likely) or audio (``mol``)."""
    if isinstance(generator, Sequence):
        return torch.cat([draw(net, outputs[i:i + 1], g, temperature) for i, g in enumerate(generator)])
    if net.config.output == "mol":
        return mol_sample(outputs.unsqueeze(-1), net.config.mixtures, generator, max(temperature, 1e-6))[:, 0]
    if temperature == 0:
        return outputs.argmax(dim=1)
    return torch.multinomial(F.softmax(outputs / temperature, dim=1), 1, generator=generator)[:, 0]


def resolve_implementation(net: WaveNet, implementation: str) -> str:
    """``implementation`` with ``auto`` resolved; raises when ``native`` cannot run ``net``."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation={implementation!r} is not one of {list(IMPLEMENTATIONS)}")
    if implementation == "auto":
        return "native" if native.supports(net) else "torch"
    if implementation == "native" and not native.supports(net):
        p = next(net.parameters())
        raise ValueError(f"implementation='native' needs a float32 CPU model and the built kernel; this one is "
                         f"{p.dtype} on {p.device}, kernel {'built' if native.load() else 'unavailable'}")
    return implementation


@torch.no_grad()
def generate(net: WaveNet, length: int, *, batch: int = 1, mel: torch.Tensor | None = None,
             label: torch.Tensor | None = None, generator: Generators = None,
             temperature: float = 1.0, implementation: str = "auto", threads: int | None = None,
             progress: bool = False) -> torch.Tensor:
    """``(B, length)`` float audio drawn sample by sample. ``mel (B, n_mels, F)`` / ``label (B,)``
    condition it (their batch sets ``B``). ``temperature`` divides the softmax logits (``0``: the
    most likely class) or scales the logistics' scale (``mol``). ``implementation``: one of
    :data:`IMPLEMENTATIONS`. ``generator`` seeds the draws: one, or one per row (:data:`Generators`);
    the native kernel draws with its own generator seeded from it, so its audio for a seed
    differs from the torch paths'.
    ``threads``: the native kernel's (default ``torch.get_num_threads()``). ``progress``: a bar
    over the samples."""
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    if mel is not None:
        batch = mel.shape[0]
    elif label is not None:
        batch = label.shape[0]
    if isinstance(generator, Sequence) and len(generator) != batch:
        raise ValueError(f"{len(generator)} generators for a batch of {batch}; give one or one per row")
    implementation = resolve_implementation(net, implementation)
    device = next(net.parameters()).device
    inputs = net.start_input(batch, device)
    from tqdm import tqdm
    bar = tqdm(total=length, desc=f"generate ({implementation})", unit="sample", unit_scale=True,
               disable=not progress, leave=False)
    try:
        if implementation == "native":
            samples = _generate_native(net, length, batch, mel, label, inputs, generator, temperature, threads, bar)
        else:
            samples = _generate_torch(net, length, net.conditioning(length, mel, label), inputs, generator,
                                      temperature, implementation == "naive", bar)
    finally:
        bar.close()
    return net.to_audio(samples)


def _generate_torch(net: WaveNet, length: int, cond: torch.Tensor | None, inputs: torch.Tensor,
                    generator: Generators, temperature: float, naive: bool, bar) -> torch.Tensor:
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
            bar.update(1)
    else:
        state = IncrementalState(net, inputs.shape[0], cond)
        for _ in range(length):
            sample = draw(net, state.step(inputs), generator, temperature)
            samples.append(sample)
            inputs = sample
            bar.update(1)
    return torch.stack(samples, dim=1)


def _generate_native(net: WaveNet, length: int, batch: int, mel: torch.Tensor | None, label: torch.Tensor | None,
                     inputs: torch.Tensor, generator: Generators, temperature: float, threads: int | None,
                     bar) -> torch.Tensor:
    if isinstance(generator, Sequence):
        seeds = [int(torch.randint(0, 2 ** 62, (1,), generator=g)) for g in generator]
    else:
        seeds = torch.randint(0, 2 ** 62, (batch,), generator=generator).tolist()
    kernel = native.NativeWaveNet(net, batch, inputs, seed=seeds, temperature=temperature, threads=threads)
    constant = mel is None or net.upsampler is None    # a label alone: one projection serves every sample
    fixed = kernel.conditioning(net.conditioning(1, mel, label)) if constant else None
    if not constant and mel.shape[-1] * net.hop_length < length:
        raise ValueError(f"a mel of {mel.shape[-1]} frames gives {mel.shape[-1] * net.hop_length} samples, "
                         f"fewer than {length}")
    width = len(net.layers) * net.config.gate_channels
    buffer = None if constant else torch.empty(batch * min(NATIVE_CHUNK, length) * width)
    pieces = []
    for start in range(0, length, NATIVE_CHUNK):
        n = min(NATIVE_CHUNK, length - start)
        proj = fixed if constant else kernel.conditioning(net.conditioning_span(start, n, mel, label), buffer)
        out, _ = kernel.run(n, proj, constant=constant and proj is not None)
        pieces.append(out)
        bar.update(n)
    samples = torch.cat(pieces, dim=1)
    return samples.long() if net.config.output == "mulaw" else samples
