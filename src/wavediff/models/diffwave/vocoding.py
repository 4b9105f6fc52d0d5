"""How a trained DiffWave vocodes: the reverse chain on the inference engine, with PriorGrad's
prior and GLA-Grad's mel-consistency options (``sampler.*``)."""
from __future__ import annotations

import functools
from typing import Sequence

import torch

from wavediff.audio.griffinlim import MagnitudeProjection
from wavediff.audio.mel import MelFrontend
from wavediff.config import RunConfig, SamplerConfig
from wavediff.diffusion.prior import noise_std
from wavediff.diffusion.samplers import Estimate, noised_start, sample
from wavediff.diffusion.schedule import (SamplingSchedule, align_schedule, at_noise_levels, linear_schedule,
                                         lowest_steps, sampling_schedule)
from wavediff.inference import InferenceEngine
from wavediff.inference.mode import EngineMode
from wavediff.inference.planning import engine_mode
from wavediff.models.diffwave.network import DiffWave
from wavediff.models.family import Vocoding, check_chunking


def _selected_schedule(config: RunConfig, steps: int,
                       etas: Sequence[float] | None) -> tuple[Sequence[float] | None, str]:
    """The variances ``steps`` and ``etas`` select to align (``None``: the full or a strided chain)
    and where they come from: ``'given'``, ``'schedules'``, ``'fast_schedule'``, ``'full'`` or ``'strided'``."""
    d = config.diffusion
    if etas is not None:
        return etas, "given"
    if steps == d.num_steps:
        return None, "full"
    named = d.schedule_for(steps)
    if named:
        return named, "fast_schedule" if named == d.fast_schedule else "schedules"
    return None, "strided"


def reverse_chain(config: RunConfig, steps: int = 6, etas: Sequence[float] | None = None) -> SamplingSchedule:
    """The reverse chain over a config's training noise schedule: explicit variances ``etas``
    (aligned to the training steps, Appendix B), else ``steps``: the config's schedule of that
    length (``diffusion.schedules``, ``diffusion.fast_schedule``), else :func:`sampling_schedule`.
    A model on continuous noise levels (``diffusion.noise_input='level'``) is called with each
    step's level sqrt(gamma-bar) instead of the aligned step (:func:`at_noise_levels`)."""
    d = config.diffusion
    schedule = linear_schedule(d.num_steps, d.beta_start, d.beta_end)
    aligned, _ = _selected_schedule(config, steps, etas)
    chain = align_schedule(schedule, aligned) if aligned is not None else sampling_schedule(schedule, steps)
    return at_noise_levels(chain) if d.noise_input == "level" else chain


def describe_chain(config: RunConfig, steps: int, etas: Sequence[float] | None = None) -> str:
    """Which chain :func:`reverse_chain` runs for ``steps`` (and ``etas``), in words: where its
    variance schedule comes from, how the network is called (steps aligned as Appendix B, or
    continuous noise levels) and, up to 12 steps, its etas from the least noise, e.g.
    "3 steps, diffusion.schedules (aligned, Appendix B), eta 0.01, 0.2715, 0.2015"."""
    d = config.diffusion
    chain = reverse_chain(config, steps, etas)
    called = "at its noise levels" if d.noise_input == "level" else "aligned, Appendix B"
    _, origin = _selected_schedule(config, steps, etas)
    source = {"given": f"given etas ({called})", "full": f"the full chain (T = {d.num_steps})",
              "strided": f"strided over the T = {d.num_steps} training steps"}.get(origin,
                                                                                 f"diffusion.{origin} ({called})")
    text = f"{chain.num_steps} step{'s' if chain.num_steps > 1 else ''}, {source}"
    if chain.num_steps <= 12:
        text += ", eta " + ", ".join(f"{float(e):.4g}" for e in chain.etas)
    return text


@torch.no_grad()
def preview_sample(model: torch.nn.Module, config: RunConfig, cond: dict[str, torch.Tensor], length: int,
                   generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A diffusion model's TensorBoard preview ``(length,)``: the config's fast schedule (the full
    chain for a config without one) through :func:`~wavediff.diffusion.samplers.sample`, under
    PriorGrad's prior where the config has it."""
    d = config.diffusion
    chain = reverse_chain(config, len(d.fast_schedule) or d.num_steps)
    std = noise_std(cond["mel"], config.mel, d) if "mel" in cond else None
    return sample(model, (1, length), chain, cond=cond, generator=generator, device=device, noise_std=std)[0]


class DiffWaveVocoding(Vocoding):
    """A mel-conditioned :class:`DiffWave` run by :class:`~wavediff.inference.InferenceEngine`.

    ``chunk_seconds``: ``'auto'`` (streaming on a CPU, else one pass within ``max_memory_gb``),
    ``'stream'``, ``None`` (one pass) or seconds per window (see
    :func:`~wavediff.inference.planning.engine_mode`); one engine is built per mode and kept.
    """

    def __init__(self, model: DiffWave, config: RunConfig, device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> None:
        check_chunking(chunk_seconds, max_memory_gb)
        self.model, self.config, self.device = model, config, device
        self.precision, self.weights = precision, weights
        self.chunk_seconds, self.max_memory_gb = chunk_seconds, max_memory_gb
        self._engines: dict[EngineMode, InferenceEngine] = {}

    def chain(self, steps: int = 6, etas: Sequence[float] | None = None) -> SamplingSchedule:
        return reverse_chain(self.config, steps, etas)

    def describe_chain(self, steps: int, etas: Sequence[float] | None = None) -> str:
        return describe_chain(self.config, steps, etas)

    def check_steps(self, steps: int) -> None:
        self.chain(steps)

    def engine_mode(self, total_samples: int, streaming: bool = True) -> EngineMode:
        """How the engine covers a batch of ``total_samples``; ``streaming=False`` for a sampler that
        needs whole steps (``sampler.consistency``)."""
        return engine_mode(self.chunk_seconds, self.device.type, total_samples, self.config, self.precision,
                           self.max_memory_gb, streaming=streaming)

    def engine(self, total_samples: int, streaming: bool = True) -> InferenceEngine:
        """The inference engine for a batch of ``total_samples`` (built once per mode)."""
        mode = self.engine_mode(total_samples, streaming)
        if mode not in self._engines:
            self._engines[mode] = InferenceEngine(self.model, precision=self.precision, weights=self.weights,
                                                  device=self.device, mode=mode)
        return self._engines[mode]

    @functools.cached_property
    def cpu_frontend(self) -> MelFrontend:
        """The mel front-end on the CPU, where the Griffin-Lim steps run."""
        return MelFrontend(self.config.mel)

    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: SamplerConfig) -> list[torch.Tensor]:
        chain = self.chain(steps, etas)
        total = sum(m.shape[-1] for m in mels) * self.config.mel.hop_length
        stds = None
        if self.config.diffusion.prior != "standard":   # PriorGrad: the noise's sigma from each mel
            stds = [noise_std(m, self.config.mel, self.config.diffusion) for m in mels]
        starts, corrections = None, None
        if sampler.uses_mel_inversion:
            projections = [MagnitudeProjection.from_mel(m.cpu(), self.cpu_frontend) for m in mels]
            if sampler.start == "griffin-lim":
                chain = lowest_steps(chain, sampler.start_steps)
                starts = [griffin_lim_start(p, chain, g, None if stds is None else stds[i], sampler)
                          for i, (p, g) in enumerate(zip(projections, generators))]
            if sampler.consistency == "griffin-lim":
                corrections = [consistency_step(p, chain.num_steps, sampler) for p in projections]
        engine = self.engine(total, streaming=corrections is None)
        return engine.vocode(mels, chain, list(generators), x_start=starts, noise_std=stds, correct_x0=corrections,
                             solver=sampler.solver)


def griffin_lim_start(projection: MagnitudeProjection, chain: SamplingSchedule, generator: torch.Generator | None,
                      std: torch.Tensor | None, sampler: SamplerConfig) -> torch.Tensor:
    """x_S for a chain started from Griffin-Lim: the estimate (its random phase drawn from
    ``generator`` first) noised to the chain's top level with ``z`` (``sigma z`` under PriorGrad)."""
    estimate = projection.from_noise(generator, sampler.griffin_lim_iters)
    z = torch.randn((1, estimate.shape[0]), generator=generator, dtype=torch.float32)[0]
    return noised_start(estimate, chain, z if std is None else z * std.reshape(-1).cpu())


def consistency_step(projection: MagnitudeProjection, top: int, sampler: SamplerConfig) -> Estimate:
    """GLA-Grad's correction for one utterance: at the ``sampler.consistency_steps`` noisiest of
    the chain's ``top`` steps, the clean estimate ``(L,)`` is replaced by its Griffin-Lim projection."""
    lowest_corrected = top - sampler.consistency_steps + 1

    def correct(step: int, x0: torch.Tensor) -> torch.Tensor | None:
        if step < lowest_corrected:
            return None
        return projection(x0.reshape(-1), sampler.consistency_iters).reshape(x0.shape)
    return correct
