"""HiFi-GAN's synthesis: the generator with its weight normalisation folded away, in one pass or in
windows with an exact overlap (:mod:`wavediff.models.hifigan.windows`)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from wavediff.config import SamplerConfig
from wavediff.errors import WavediffError
from wavediff.models.family import Vocoding, check_chunking
from wavediff.models.hifigan.gan import HiFiGAN
from wavediff.models.hifigan.network import HiFiGANGenerator, folded_copy
from wavediff.models.hifigan.planar import PlanarGenerator
from wavediff.models.hifigan.windows import context_frames, generate_in_windows

VOCODING_PRECISIONS = ("fp32", "bf16")
WINDOW_FRAMES = 256
"""Frames a window produces under ``chunk_seconds='auto'`` / ``'stream'`` on a CPU (about 3 s at
hop 256): measured faster than one pass for V1 and V3 in fp32 and bf16, the activations of a
window staying in cache (docs/results.md)."""
ACTIVATION_BYTES_PER_SAMPLE_CHANNEL = 24
"""Bytes a one-pass generator holds per output sample and channel of its widest stage (the block's
input, its running sum and temporaries, fp32): sizes the GPU's one pass against ``max_memory_gb``."""


class HiFiGANVocoding(Vocoding):
    """Mels ``(n_mels, F_i)`` -> ``(F_i * hop,)`` fp32 audio through a folded copy of the generator
    (on a CPU its :class:`PlanarGenerator` form). ``precision`` 'bf16' runs a bf16 copy
    of the generator (weights and activations). ``chunk_seconds``: ``None`` one pass; seconds:
    windows of that length; ``'stream'``: windows of :data:`WINDOW_FRAMES`; ``'auto'``: those
    windows on a CPU, elsewhere one pass unless it would need more than ``max_memory_gb``.
    Windows equal one pass within float rounding. Steps, variances, generators and sampler do not
    apply."""

    iterative = False

    def __init__(self, model: HiFiGAN | HiFiGANGenerator, device: torch.device, precision: str, weights: str,
                 sample_rate: int, chunk_seconds: float | str | None = None, max_memory_gb: float = 4.0) -> None:
        if precision not in VOCODING_PRECISIONS or weights != "float":
            raise WavediffError(f"a HiFi-GAN vocodes with precision in {list(VOCODING_PRECISIONS)} and float weights, "
                                f"not precision={precision!r}, weights={weights!r}")
        check_chunking(chunk_seconds, max_memory_gb)
        generator = model.generator if isinstance(model, HiFiGAN) else model
        # on a CPU the convolutions run planar and channels-last (oneDNN's fast kernels, planar.py)
        self.generator: torch.nn.Module = (PlanarGenerator(generator) if device.type == "cpu"
                                           else folded_copy(generator)).to(device).eval()
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.generator.to(self.dtype)
        self.device, self.precision = device, precision
        self.chunk_seconds, self.max_memory_gb = chunk_seconds, max_memory_gb
        self.sample_rate = sample_rate

    def window_frames(self, frames: int) -> int | None:
        """Frames per window for a mel of ``frames`` (``None``: one pass)."""
        if self.chunk_seconds is None:
            return None
        if isinstance(self.chunk_seconds, (int, float)):
            return max(1, round(self.chunk_seconds * self.sample_rate / self.generator.hop_length))
        if self.chunk_seconds == "stream" or self.device.type == "cpu":
            return WINDOW_FRAMES
        config = self.generator.config
        widest = max(config.initial_channels // 2 ** (i + 1) * math.prod(config.upsample_rates[:i + 1])
                     for i in range(len(config.upsample_rates)))  # channels x samples per frame, per stage
        per_frame = widest * ACTIVATION_BYTES_PER_SAMPLE_CHANNEL * self.dtype.itemsize / 4
        fits = int(self.max_memory_gb * 1e9 // per_frame)
        return None if frames <= fits else max(1, fits - 2 * context_frames(config))

    def generate(self, mel: torch.Tensor) -> torch.Tensor:
        """One mel ``(n_mels, F)`` -> fp32 audio ``(F * hop,)`` on the vocoder's device."""
        mel = mel.to(self.device, self.dtype)
        window = self.window_frames(mel.shape[-1])
        if window is None or window >= mel.shape[-1]:
            return self.generator(mel.unsqueeze(0))[0].float()
        return generate_in_windows(self.generator, mel, window)

    @torch.inference_mode()
    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: SamplerConfig) -> list[torch.Tensor]:
        return [self.generate(mel).cpu() for mel in mels]
