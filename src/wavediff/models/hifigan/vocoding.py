"""HiFi-GAN's synthesis: one pass of the generator, its weight normalisation folded away."""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from wavediff.config import SamplerConfig
from wavediff.errors import WavediffError
from wavediff.models.family import Vocoding
from wavediff.models.hifigan.gan import HiFiGAN
from wavediff.models.hifigan.network import folded_copy
from wavediff.precision import compute_dtype

VOCODING_PRECISIONS = ("fp32", "bf16")


class HiFiGANVocoding(Vocoding):
    """Mels ``(n_mels, F_i)`` -> ``(F_i * hop,)`` fp32 audio, each mel in one pass; ``precision``
    'bf16' runs under autocast. Steps, variances, generators and sampler do not apply."""

    iterative = False

    def __init__(self, model: HiFiGAN, device: torch.device, precision: str, weights: str) -> None:
        if precision not in VOCODING_PRECISIONS or weights != "float":
            raise WavediffError(f"a HiFi-GAN vocodes with precision in {list(VOCODING_PRECISIONS)} and float weights, "
                                f"not precision={precision!r}, weights={weights!r}")
        self.generator = folded_copy(model.generator).to(device).eval()
        self.device, self.precision = device, precision

    @torch.inference_mode()
    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: SamplerConfig) -> list[torch.Tensor]:
        autocast = (torch.autocast(self.device.type, dtype=compute_dtype(self.precision))
                    if self.precision != "fp32" else nullcontext())
        out = []
        for mel in mels:
            with autocast:
                audio = self.generator(mel.to(self.device, torch.float32).unsqueeze(0))[0]
            out.append(audio.float().cpu())
        return out
