"""How a trained WaveGrad vocodes: the reverse chain over continuous noise levels, run by
:func:`~wavediff.diffusion.samplers.sample` on the torch network, one utterance at a time, with
every update rule (``sampler.method``), PriorGrad's prior and the Griffin-Lim start and
consistency options of DiffWave's vocoding (``sampler.*``)."""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from wavediff.audio.griffinlim import MagnitudeProjection
from wavediff.audio.mel import MelFrontend
from wavediff.config import RunConfig, SamplerConfig
from wavediff.diffusion.prior import noise_std
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import SamplingSchedule, lowest_steps
from wavediff.errors import WavediffError
from wavediff.models.diffwave.vocoding import consistency_step, describe_chain, griffin_lim_start, reverse_chain
from wavediff.models.family import Vocoding, check_chunking
from wavediff.models.wavegrad.network import WaveGrad

VOCODING_PRECISIONS = ("fp32", "bf16")


class WaveGradVocoding(Vocoding):
    """Mels ``(n_mels, F_i)`` -> ``(F_i * hop,)`` fp32 audio. ``precision='bf16'`` runs the network
    under bf16 autocast (the chain's state stays fp32). One pass per utterance: ``chunk_seconds``
    is checked but windows are not used (the network's activations grow with the length)."""

    def __init__(self, model: WaveGrad, config: RunConfig, device: torch.device, precision: str,
                 chunk_seconds: float | str | None, max_memory_gb: float) -> None:
        if precision not in VOCODING_PRECISIONS:
            raise WavediffError(f"WaveGrad vocodes with precision in {list(VOCODING_PRECISIONS)}, not {precision!r}")
        check_chunking(chunk_seconds, max_memory_gb)
        self.model, self.config, self.device, self.precision = model, config, device, precision

    def chain(self, steps: int = 6, etas: Sequence[float] | None = None) -> SamplingSchedule:
        return reverse_chain(self.config, steps, etas)

    def describe_chain(self, steps: int, etas: Sequence[float] | None = None) -> str:
        return describe_chain(self.config, steps, etas)

    def check_steps(self, steps: int) -> None:
        self.chain(steps)

    @functools.cached_property
    def cpu_frontend(self) -> MelFrontend:
        return MelFrontend(self.config.mel)

    @torch.inference_mode()
    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: SamplerConfig) -> list[torch.Tensor]:
        full = self.chain(steps, etas)
        out = []
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        for mel, gen in zip(mels, generators):
            chain, start, correct = full, None, None
            std = noise_std(mel, self.config.mel, self.config.diffusion)   # None under the standard prior
            if sampler.uses_mel_inversion:
                projection = MagnitudeProjection.from_mel(mel.cpu(), self.cpu_frontend)
                if sampler.start == "griffin-lim":
                    chain = lowest_steps(full, sampler.start_steps)
                    start = griffin_lim_start(projection, chain, gen, std, sampler).unsqueeze(0)
                if sampler.consistency == "griffin-lim":
                    correct = consistency_step(projection, chain.num_steps, sampler)
            m = mel.to(self.device, torch.float32).unsqueeze(0)
            with autocast:
                x = sample(lambda x, t: self.model(x, t, mel=m), (1, mel.shape[-1] * self.model.hop_length), chain,
                           generator=gen, device=self.device, x_start=start, solver=sampler.solver,
                           noise_std=None if std is None else std.reshape(1, -1),
                           correct_x0=correct)
            out.append(x[0].float().cpu())
        return out
