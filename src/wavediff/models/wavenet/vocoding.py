"""WaveNet as a mel vocoder: incremental generation over each mel, batched across mels."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from wavediff.config import SamplerConfig
from wavediff.errors import WavediffError
from wavediff.models.family import Vocoding
from wavediff.models.wavenet.generation import generate
from wavediff.models.wavenet.network import WaveNet

VOCODING_PRECISIONS = ("fp32",)


class WaveNetVocoding(Vocoding):
    """Mels ``(n_mels, F_i)`` -> ``(F_i * hop,)`` fp32 audio, drawn sample by sample with the
    per-layer queues (:func:`~wavediff.models.wavenet.generation.generate`: the native kernel
    where it runs, else torch) at the sampler's ``temperature``. Mels of one length run as one
    batch; each draws from its own generator when every mel has one. Steps do not apply."""

    iterative = False

    def __init__(self, model: WaveNet, device: torch.device, precision: str, progress: bool = False) -> None:
        if precision not in VOCODING_PRECISIONS:
            raise WavediffError(f"a WaveNet vocodes with precision in {list(VOCODING_PRECISIONS)}, "
                                f"not precision={precision!r}")
        self.net = model.to(device).eval()
        self.device, self.precision, self.progress = device, precision, progress

    @torch.inference_mode()
    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: SamplerConfig) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(mels)
        by_length: dict[int, list[int]] = {}
        for i, mel in enumerate(mels):
            by_length.setdefault(mel.shape[-1], []).append(i)
        hop = self.net.hop_length
        for frames, idx in by_length.items():
            batch = torch.stack([mels[i].to(self.device, torch.float32) for i in idx])
            gens = [generators[i] for i in idx]
            per_row = all(g is not None for g in gens)
            audio = generate(self.net, frames * hop, mel=batch, generator=gens if per_row else gens[0],
                             temperature=sampler.temperature, progress=self.progress)
            for row, i in enumerate(idx):
                out[i] = audio[row].float()
        return [a for a in out if a is not None]
