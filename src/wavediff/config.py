"""Frozen, validated configuration dataclasses and the named presets.

A run is described by one :class:`RunConfig`, made of a mel front-end, a diffusion
schedule, a model, data and training settings. Every checkpoint stores it as JSON, so
a checkpoint rebuilds itself without global defaults.

Presets (``wavediff config show NAME`` prints one):

======================  ==================================================================
``base``                DiffWave BASE vocoder: 30 layers, C=64, cycle 10, T=50, diffwave mel
``large``               DiffWave LARGE vocoder: 30 layers, C=128, cycle 10, T=200
``sc09-uncond``         unconditional SC09: 36 layers, C=256, cycle 12, T=200, 16 kHz
``sc09-class``          class-conditional SC09 (ten digits): as ``sc09-uncond`` plus a label
``sc09-uncond-cpu``     CPU-sized unconditional SC09: 14 layers, C=64, cycle 14, T=200, peak-normalised clips
``sc09-class-cpu``      CPU-sized class-conditional SC09, label dropout 0.1, peak-normalised clips
``tiny``                12 layers, C=32, cycle 6, T=50, PriorGrad + GLA-Grad: CPU, the demo
======================  ==================================================================

Class-conditional and unconditional models train on whole clips of
``data.crop_frames * mel.hop_length`` samples (SC09: 100 x 160 = 16,000, one second);
their ``mel`` section only supplies the sample rate and hop.

The CPU presets keep the paper's rule that the receptive field covers about twice the
clip (r >= 2L = 32,000 samples at 16 kHz) by one cycle of 14 dilations 1..8192:
r = 2 (2^14 - 1) + 1 = 32,767, against 24,571 for the paper's 36 layers. What they give up
is depth and width: 14 layers of C=64 (1.26M parameters unconditional, 1.49M with labels, most of
them in the step embedding) against 36 layers of C=256 (24.0M), so each time scale is seen by one
layer instead of three. They train in bf16 autocast (2.1x faster than fp32 on this CPU), batch 8.
"""
from __future__ import annotations

import dataclasses
import json
import math
import logging
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from wavediff.errors import WavediffError
from wavediff.precision import TRAINING_PRECISIONS

if typing.TYPE_CHECKING:
    from wavediff.diffusion.solvers import Solver

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

Conditioning = Literal["mel", "class", "none"]
LossType = Literal["l1", "l2"]
Prior = Literal["standard", "priorgrad"]
NoiseInput = Literal["step", "level"]
Normalization = Literal["none", "peak"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Implementation = Literal["auto", "fused", "reference"]
# how the network runs in training (wavediff.training.setup resolves "auto")
TRAINING_IMPLEMENTATIONS = ("auto", "fused", "reference")
ChainStart = Literal["noise", "griffin-lim"]
Consistency = Literal["none", "griffin-lim"]


def _check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise WavediffError(f"{name}={value!r} is not allowed; choose one of {list(allowed)}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise WavediffError(f"{name}={value!r} must be > 0")


@dataclass(frozen=True)
class MelConfig:
    """A mel-spectrogram front-end. ``f_max=None`` means ``sample_rate / 2``.

    ``padding='center'``: frames centred on ``k * hop_length`` with reflect padding of
    ``n_fft // 2`` (torchaudio/librosa ``center=True``; ``1 + L // hop`` frames).
    ``padding='hifigan'``: reflect padding of ``(n_fft - hop) / 2`` each side and no
    centring (HiFi-GAN / Tacotron 2; ``L // hop`` frames for ``L`` a multiple of hop).
    ``compression='db_normalized'``: ``clamp((20 log10(max(m, 1e-5)) - 20 + 100) / 100, 0, 1)``
    (lmnt-com/diffwave); ``compression='log'``: ``ln(max(m, log_floor))``.
    ``magnitude_eps``: STFT magnitude taken as ``sqrt(re^2 + im^2 + eps)`` (HiFi-GAN: 1e-9).
    """

    name: str = "diffwave"
    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float | None = None
    mel_scale: Literal["htk", "slaney"] = "htk"
    mel_norm: Literal["slaney", "none"] = "none"
    stft_normalized: bool = True
    padding: Literal["center", "hifigan"] = "center"
    compression: Literal["db_normalized", "log"] = "db_normalized"
    log_floor: float = 1e-5
    magnitude_eps: float = 0.0

    def __post_init__(self) -> None:
        for n in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            _check_positive(f"mel.{n}", getattr(self, n))
        if self.win_length > self.n_fft:
            raise WavediffError(f"mel.win_length={self.win_length} must be <= mel.n_fft={self.n_fft}")
        _check_choice("mel.mel_scale", self.mel_scale, ["htk", "slaney"])
        _check_choice("mel.mel_norm", self.mel_norm, ["slaney", "none"])
        _check_choice("mel.padding", self.padding, ["center", "hifigan"])
        _check_choice("mel.compression", self.compression, ["db_normalized", "log"])
        if self.padding == "hifigan" and (self.n_fft - self.hop_length) % 2:
            raise WavediffError(
                f"mel.padding='hifigan' needs n_fft - hop_length even, got {self.n_fft} - {self.hop_length}"
            )
        if not 0 <= self.f_min < self.max_frequency <= self.sample_rate / 2:
            raise WavediffError(
                f"mel band edges f_min={self.f_min}, f_max={self.f_max} must satisfy "
                f"0 <= f_min < f_max <= sample_rate/2 = {self.sample_rate / 2}"
            )

    @property
    def max_frequency(self) -> float:
        return float(self.f_max) if self.f_max is not None else self.sample_rate / 2


MEL_PRESETS: dict[str, MelConfig] = {
    # lmnt-com/diffwave: torchaudio MelSpectrogram(power=1, normalized=True, htk, no norm).
    "diffwave": MelConfig(),
    # HiFi-GAN / Tacotron 2 (NVIDIA): slaney bands 0-8 kHz, ln clamp 1e-5, (n_fft-hop)/2 reflect pad.
    "hifigan": MelConfig(
        name="hifigan", f_min=0.0, f_max=8000.0, mel_scale="slaney", mel_norm="slaney",
        stft_normalized=False, padding="hifigan", compression="log", magnitude_eps=1e-9,
    ),
    # WaveGrad (Chen et al. 2021): 24 kHz, 128 bands over 80 Hz-7.6 kHz, 50 ms windows every 12.5 ms, log.
    "wavegrad": MelConfig(
        name="wavegrad", sample_rate=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=128,
        f_min=80.0, f_max=7600.0, stft_normalized=False, compression="log",
    ),
    # AudioLDM / AudioLDM 2 / Auffusion vocoder stage: 16 kHz, 64 bands, hop 160.
    "audioldm": MelConfig(
        name="audioldm", sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160,
        n_mels=64, f_min=0.0, f_max=8000.0, mel_scale="slaney", mel_norm="slaney",
        stft_normalized=False, padding="hifigan", compression="log",
    ),
}


@dataclass(frozen=True)
class DiffusionConfig:
    """Linear beta schedule of ``num_steps`` steps and the training objective.

    ``fast_schedule`` is the paper's Appendix B variance schedule (eta) used when
    sampling with ``len(fast_schedule)`` steps. ``loss`` defaults to the paper's L2; L1
    (lmnt-com/diffwave, WaveGrad) is the alternative (see docs/results.md, "Choice of loss").

    ``prior='priorgrad'`` (mel vocoders only) replaces the standard normal noise by
    PriorGrad's N(0, diag sigma^2), sigma per mel frame from its energy
    (:mod:`wavediff.diffusion.prior`): ``clamp(E / prior_energy_max, prior_std_min, 1)``.
    ``prior_energy_max=0`` means "the largest frame energy of the training data", measured
    when a run starts and written into its config.

    ``schedules`` holds further inference schedules (eta, from the least noise), one per step
    count: ``--steps N`` runs the one of length N before ``fast_schedule`` and the strided chain
    (``wavediff search-schedule --into`` writes a searched one here).

    ``noise_input`` is what the network is told about the noise: ``'step'``, the 0-based step
    index (the paper; fractional steps for the fast sampler, Appendix B), or ``'level'``, the
    continuous noise level sqrt(abar) as WaveGrad (Chen et al. 2021): training draws it uniformly
    between the levels of two adjacent steps, and any inference schedule can be run without
    alignment. The level is encoded as sinusoids of ``level_scale * sqrt(abar)`` at frequencies
    1e-4..1 (5000 in WaveGrad's public implementations).
    """

    num_steps: int = 50
    beta_start: float = 1e-4
    beta_end: float = 0.05
    fast_schedule: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.5)
    loss: LossType = "l2"
    prior: Prior = "standard"
    prior_std_min: float = 0.1
    prior_energy_max: float = 0.0
    noise_input: NoiseInput = "step"
    level_scale: float = 5000.0
    schedules: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise WavediffError(f"diffusion.num_steps={self.num_steps} must be >= 1")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise WavediffError(
                f"diffusion betas must satisfy 0 < beta_start <= beta_end < 1, "
                f"got {self.beta_start}, {self.beta_end}"
            )
        _check_choice("diffusion.loss", self.loss, ["l1", "l2"])
        _check_choice("diffusion.prior", self.prior, ["standard", "priorgrad"])
        _check_choice("diffusion.noise_input", self.noise_input, ["step", "level"])
        if not self.level_scale > 0:
            raise WavediffError(f"diffusion.level_scale={self.level_scale} must be > 0")
        if not 0 < self.prior_std_min <= 1:
            raise WavediffError(f"diffusion.prior_std_min={self.prior_std_min} must lie in (0, 1]")
        if not self.prior_energy_max >= 0:
            raise WavediffError(f"diffusion.prior_energy_max={self.prior_energy_max} must be >= 0 "
                                "(0: measured on the training data)")
        object.__setattr__(self, "fast_schedule", tuple(float(x) for x in self.fast_schedule))
        object.__setattr__(self, "schedules", tuple(tuple(float(x) for x in s) for s in self.schedules))
        self._check_fast_schedule(self.fast_schedule, "fast_schedule")
        lengths = [len(s) for s in self.schedules]
        if 0 in lengths or len(set(lengths)) != len(lengths):
            raise WavediffError(f"diffusion.schedules has lengths {lengths}: give at most one non-empty schedule "
                                "per step count")
        for s in self.schedules:
            self._check_fast_schedule(s, "schedules")

    def schedule_for(self, steps: int) -> tuple[float, ...]:
        """The inference schedule this config names for ``steps`` steps (``schedules``, then
        ``fast_schedule``), or ``()``: none."""
        for s in self.schedules:
            if len(s) == steps:
                return s
        return self.fast_schedule if len(self.fast_schedule) == steps else ()

    def _check_fast_schedule(self, etas: tuple[float, ...], name: str) -> None:
        """A schedule must align to the training chain (Appendix B): every eta in (0, 1)
        and its final noise level gamma-bar_S no lower than alpha-bar_T. Checked here so that a
        run does not fail at its first validation, hours in."""
        if not etas:
            return
        if not all(0 < e < 1 for e in etas):
            raise WavediffError(f"diffusion.{name}={list(etas)}: every eta must lie in (0, 1)")
        T = self.num_steps
        abar = 1.0
        for t in range(T):
            abar *= 1.0 - (self.beta_start + (self.beta_end - self.beta_start) * t / max(T - 1, 1))
        gbar = math.prod(1.0 - e for e in etas)
        if gbar < abar * (1 - 1e-6):
            raise WavediffError(
                f"diffusion.{name}={list(etas)} ends at gamma-bar={gbar:.4g}, below "
                f"alpha-bar_T={abar:.4g} of T={T}, beta {self.beta_start:g}..{self.beta_end:g}: it cannot be aligned "
                "to the training chain; use smaller etas (the paper: 1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5 for T=50) "
                "or diffusion.fast_schedule=[]"
            )


@dataclass(frozen=True)
class ModelConfig:
    """DiffWave denoiser hyper-parameters (Kong et al. 2021, Section 3 and Appendix)."""

    residual_layers: int = 30
    residual_channels: int = 64
    dilation_cycle: int = 10
    kernel_size: int = 3
    conditioning: Conditioning = "mel"
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    step_embedding_dim: int = 128
    step_hidden_dim: int = 512
    label_embedding_dim: int = 128
    label_dropout: float = 0.0
    upsample_leaky_slope: float = 0.4

    def __post_init__(self) -> None:
        for n in ("residual_layers", "residual_channels", "dilation_cycle", "kernel_size"):
            if getattr(self, n) < 1:
                raise WavediffError(f"model.{n}={getattr(self, n)} must be >= 1")
        if self.kernel_size % 2 == 0:
            raise WavediffError(
                f"model.kernel_size={self.kernel_size} must be odd (the convolution is bidirectional)"
            )
        if self.step_embedding_dim % 2:
            raise WavediffError(f"model.step_embedding_dim={self.step_embedding_dim} must be even")
        _check_choice("model.conditioning", self.conditioning, ["mel", "class", "none"])
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.conditioning == "class" and self.num_classes < 1:
            raise WavediffError("model.conditioning='class' needs model.num_classes >= 1")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise WavediffError(
                f"model.class_names has {len(self.class_names)} names but model.num_classes={self.num_classes}"
            )
        if not 0 <= self.label_dropout < 1:
            raise WavediffError(f"model.label_dropout={self.label_dropout} must be in [0, 1)")
        if self.label_dropout > 0 and self.conditioning != "class":
            raise WavediffError(
                f"model.label_dropout={self.label_dropout} needs model.conditioning='class', "
                f"got {self.conditioning!r}"
            )

    @property
    def null_label(self) -> int | None:
        """The label index that means "no label" (classifier-free guidance), if trained with one."""
        return self.num_classes if self.conditioning == "class" and self.label_dropout > 0 else None

    @property
    def dilations(self) -> list[int]:
        """Dilation of each layer: doubling within a cycle, restarting at 1."""
        return [2 ** (i % self.dilation_cycle) for i in range(self.residual_layers)]

    @property
    def receptive_field(self) -> int:
        """r = (k - 1) * sum(d_i) + 1 samples, for one pass of the network."""
        return (self.kernel_size - 1) * sum(self.dilations) + 1


@dataclass(frozen=True)
class DataConfig:
    """Training crops, the validation split and loudness normalisation.

    ``normalize='peak'`` scales every training utterance to a peak of ``peak_level`` before
    its mel is computed (PriorGrad, FreGrad, HiFi-GAN: 0.95); a vocoder trained so takes the
    same step on the audio it resynthesises and scales its output back
    (:meth:`wavediff.pipelines.Vocoder.input_gain`). ``'none'``: the audio as recorded.

    A class-conditional or unconditional model has no input to take its level from, so its
    training measures ``source_peak``, the median peak of the training clips as recorded
    (0: not measured), and :class:`wavediff.pipelines.Synthesizer` scales its clips from
    ``peak_level`` back to it: generated clips come out as loud as the data was.
    """

    crop_frames: int = 62
    val_count: int = 8
    val_fraction: float = 0.02
    normalize: Normalization = "none"
    peak_level: float = 0.95
    source_peak: float = 0.0

    @property
    def normalization_peak(self) -> float | None:
        """The peak training audio is scaled to, or ``None`` without normalisation."""
        return self.peak_level if self.normalize == "peak" else None

    @property
    def output_gain(self) -> float:
        """The factor a generation model's clips are scaled by: ``source_peak / peak_level`` for a
        model trained on peak-normalised clips whose source level was measured, 1 otherwise."""
        if self.normalize != "peak" or self.source_peak <= 0:
            return 1.0
        return self.source_peak / self.peak_level

    def __post_init__(self) -> None:
        _check_positive("data.crop_frames", self.crop_frames)
        _check_choice("data.normalize", self.normalize, ["none", "peak"])
        if not 0 < self.peak_level <= 1:
            raise WavediffError(f"data.peak_level={self.peak_level} must lie in (0, 1]")
        if not 0 <= self.source_peak <= 1:
            raise WavediffError(f"data.source_peak={self.source_peak} must lie in [0, 1] (0: not measured)")
        if self.val_count < 0 or not 0 <= self.val_fraction < 1:
            raise WavediffError(
                f"data.val_count={self.val_count} must be >= 0 and data.val_fraction={self.val_fraction} in [0, 1)"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, logging and checkpointing.

    ``batch_size`` is the global batch of one optimiser step, whatever the number of
    processes: each of W processes takes ``batch_size / W`` items, in micro-batches of
    ``micro_batch_size`` (0: all of them at once) whose gradients are accumulated.

    ``spectral_loss_weight`` > 0 adds that multiple of a multi-resolution STFT loss between
    the clean crop and the network's estimate of it (as RFWave and FreGrad do; see
    :func:`wavediff.diffusion.objective.diffusion_loss`); 0, the default, is the paper's objective.
    """

    batch_size: int = 16
    micro_batch_size: int = 0
    learning_rate: float = 2e-4
    lr_decay: float = 1.0               # the learning rate of epoch e is learning_rate * lr_decay**e
    grad_clip_norm: float = 1.0         # 0: no clipping (the norm is still logged)
    ema_decay: float = 0.999
    max_steps: int = 1_000_000
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    val_batches: int = 2
    checkpoint_every: int = 1000
    keep_last: int = 3
    precision: Precision = "auto"
    implementation: Implementation = "auto"
    spectral_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if not self.spectral_loss_weight >= 0:
            raise WavediffError(f"train.spectral_loss_weight={self.spectral_loss_weight} must be >= 0 (0: off)")
        for n in ("batch_size", "max_steps", "log_every", "val_every", "checkpoint_every", "keep_last"):
            if getattr(self, n) < 1:
                raise WavediffError(f"train.{n}={getattr(self, n)} must be >= 1")
        if self.micro_batch_size < 0:
            raise WavediffError(f"train.micro_batch_size={self.micro_batch_size} must be >= 0 (0: no accumulation)")
        _check_positive("train.learning_rate", self.learning_rate)
        if not 0 < self.lr_decay <= 1:
            raise WavediffError(f"train.lr_decay={self.lr_decay} must be in (0, 1] (1: a constant learning rate)")
        if self.grad_clip_norm < 0:
            raise WavediffError(f"train.grad_clip_norm={self.grad_clip_norm} must be >= 0 (0: no clipping)")
        if not 0 <= self.ema_decay < 1:
            raise WavediffError(f"train.ema_decay={self.ema_decay} must be in [0, 1)")
        _check_choice("train.precision", self.precision, TRAINING_PRECISIONS)
        _check_choice("train.implementation", self.implementation, list(TRAINING_IMPLEMENTATIONS))


@dataclass(frozen=True)
class HiFiGANConfig:
    """HiFi-GAN (Kong, Kim and Bae 2020): the generator, the two discriminators and the loss
    weights. Read only when ``family='hifigan'``. The defaults are the paper's V1.

    The generator upsamples the mel ``prod(upsample_rates)`` times (which must equal the mel's
    hop) with transposed convolutions, each followed by a multi-receptive-field fusion of
    residual blocks (``resblock`` 1: two convolutions per dilation; 2: one).
    ``discriminator_width`` scales every channel count of both discriminators (1.0: the paper's;
    smaller for CPU budgets, in steps of 1/8 so that the grouped convolutions of the scale
    discriminator keep channels in 16s).
    """

    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernels: tuple[int, ...] = (16, 16, 4, 4)
    initial_channels: int = 512
    resblock: int = 1
    resblock_kernels: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    leaky_slope: float = 0.1
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    scales: int = 3
    discriminator_width: float = 1.0
    mel_loss_weight: float = 45.0
    feature_loss_weight: float = 2.0

    def __post_init__(self) -> None:
        _check_choice("hifigan.resblock", self.resblock, [1, 2])
        if not self.upsample_rates or len(self.upsample_kernels) != len(self.upsample_rates):
            raise WavediffError(f"hifigan.upsample_kernels={list(self.upsample_kernels)} must give one kernel per "
                                f"rate of hifigan.upsample_rates={list(self.upsample_rates)}")
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernels):
            if rate < 1 or kernel < rate:
                raise WavediffError(f"hifigan upsampling rate {rate} with kernel {kernel}: rates must be >= 1 and "
                                    "kernels at least their rate")
        if self.initial_channels < 2 ** len(self.upsample_rates):
            raise WavediffError(f"hifigan.initial_channels={self.initial_channels} must be >= "
                                f"{2 ** len(self.upsample_rates)} (halved at each of the {len(self.upsample_rates)} "
                                "upsampling stages)")
        if not self.resblock_kernels or len(self.resblock_dilations) != len(self.resblock_kernels):
            raise WavediffError(f"hifigan.resblock_dilations={[list(d) for d in self.resblock_dilations]} must give "
                                f"one list per kernel of hifigan.resblock_kernels={list(self.resblock_kernels)}")
        if any(k < 1 or k % 2 == 0 for k in self.resblock_kernels) or any(
                not d or min(d) < 1 for d in self.resblock_dilations):
            raise WavediffError("hifigan.resblock_kernels must be odd and hifigan.resblock_dilations >= 1, got "
                                f"{list(self.resblock_kernels)} and {[list(d) for d in self.resblock_dilations]}")
        if any(p < 2 for p in self.periods) or self.scales < 0 or not (self.periods or self.scales):
            raise WavediffError(f"hifigan.periods={list(self.periods)} (each >= 2) and hifigan.scales={self.scales} "
                                "(>= 0) must give at least one discriminator")
        eighths = 8 * self.discriminator_width
        if not self.discriminator_width > 0 or abs(eighths - round(eighths)) > 1e-9:
            raise WavediffError(f"hifigan.discriminator_width={self.discriminator_width} must be a positive multiple "
                                "of 1/8 (the scale discriminator's grouped convolutions need channels in 16s)")
        for name in ("leaky_slope", "mel_loss_weight", "feature_loss_weight"):
            if getattr(self, name) < 0:
                raise WavediffError(f"hifigan.{name}={getattr(self, name)} must be >= 0")

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame: the product of the upsampling rates."""
        return math.prod(self.upsample_rates)


SOLVER_METHODS = ("ancestral", "ddim", "dpm-solver")   # the reverse chain's update rules (diffusion.solvers)


@dataclass(frozen=True)
class SamplerConfig:
    """How a vocoder's reverse chain starts and whether it is held to its mel (inference only;
    a checkpoint records the defaults its ``wavediff vocode`` and ``evaluate`` use).

    ``start='griffin-lim'`` starts the chain ``start_steps`` steps before its end from a
    Griffin-Lim estimate of ``griffin_lim_iters`` iterations, noised to that step's level
    (shallow diffusion, as DiffSinger and GLA-Grad++ start from an auxiliary estimate);
    ``'noise'`` is the paper's start from pure noise at the chain's top.
    ``consistency='griffin-lim'`` is GLA-Grad's correction: at the ``consistency_steps``
    noisiest steps run, the network's estimate of the clean signal is replaced by
    ``consistency_iters`` Griffin-Lim iterations from it onto the STFT magnitude the mel
    implies (:class:`wavediff.audio.griffinlim.MagnitudeProjection`).
    ``method`` is the reverse chain's update rule (:mod:`wavediff.diffusion.solvers`):
    ``'ancestral'`` (the paper's Algorithm 2 / Appendix B), ``'ddim'`` (noise scaled by
    ``ddim_eta`` in [0, 1]: 0 deterministic, 1 the ancestral chain) or ``'dpm-solver'``
    (DPM-Solver++(2M), deterministic).
    ``temperature`` applies to an autoregressive family's draws (WaveNet): it divides the
    softmax logits (``0`` takes the most likely class) or scales the logistics' scale; the
    diffusion options above do not apply to it, and diffusion ignores ``temperature``.
    """

    start: ChainStart = "noise"
    start_steps: int = 3
    griffin_lim_iters: int = 32
    consistency: Consistency = "none"
    consistency_steps: int = 3
    consistency_iters: int = 1
    temperature: float = 1.0
    method: str = "ancestral"
    ddim_eta: float = 0.0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise WavediffError(f"sampler.temperature={self.temperature} must be >= 0")
        _check_choice("sampler.method", self.method, list(SOLVER_METHODS))
        if not 0.0 <= self.ddim_eta <= 1.0:
            raise WavediffError(f"sampler.ddim_eta={self.ddim_eta} must lie in [0, 1]")
        _check_choice("sampler.start", self.start, ["noise", "griffin-lim"])
        _check_choice("sampler.consistency", self.consistency, ["none", "griffin-lim"])
        for n in ("start_steps", "griffin_lim_iters", "consistency_steps", "consistency_iters"):
            if getattr(self, n) < 1:
                raise WavediffError(f"sampler.{n}={getattr(self, n)} must be >= 1")

    def with_overrides(self, items: Sequence[str]) -> "SamplerConfig":
        """This config with ``key=value`` items (``start=griffin-lim``, ``start_steps=2``, ...); an
        item that is a method's name alone (``ddim``, ``dpm-solver``) sets ``method``."""
        items = [f"method={item.strip()}" if item.strip() in SOLVER_METHODS else item for item in items]
        return RunConfig(sampler=self).with_overrides(
            [item if item.startswith("sampler.") else f"sampler.{item.strip()}" for item in items]).sampler

    @property
    def solver(self) -> "Solver":
        """The reverse chain's update rule."""
        from wavediff.diffusion.solvers import Solver

        return Solver(self.method, self.ddim_eta)

    @property
    def uses_mel_inversion(self) -> bool:
        """True when sampling needs the mel's STFT magnitude (a Griffin-Lim start or consistency)."""
        return self.start != "noise" or self.consistency != "none"


WAVENET_OUTPUTS = ("mulaw", "mol")


@dataclass(frozen=True)
class WaveNetConfig:
    """WaveNet (van den Oord et al. 2016): a stack of causal dilated convolutions with gated units,
    residual and skip paths. Read only when ``family='wavenet'``.

    Layer ``i`` has dilation ``2 ** (i % dilation_cycle)`` and kernel ``kernel_size`` (2 or 3);
    the receptive field is ``1 + (kernel_size - 1) * sum(dilations)`` samples. ``output``
    'mulaw': a ``quantization_channels``-way softmax over mu-law companded samples (mu =
    channels - 1); 'mol': a discretised mixture of ``mixtures`` logistics over 16-bit samples
    (Salimans et al. 2017, as in Parallel WaveNet). ``label_embedding_dim`` sizes the global
    conditioning's label embedding (class models).
    """

    output: str = "mulaw"
    quantization_channels: int = 256
    mixtures: int = 10
    layers: int = 20
    dilation_cycle: int = 10
    kernel_size: int = 2
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 64
    label_embedding_dim: int = 16

    def __post_init__(self) -> None:
        _check_choice("wavenet.output", self.output, list(WAVENET_OUTPUTS))
        _check_choice("wavenet.kernel_size", self.kernel_size, [2, 3])
        for name in ("quantization_channels", "mixtures", "layers", "dilation_cycle", "residual_channels",
                     "gate_channels", "skip_channels", "label_embedding_dim"):
            if getattr(self, name) < 1:
                raise WavediffError(f"wavenet.{name}={getattr(self, name)} must be >= 1")
        if self.gate_channels % 2:
            raise WavediffError(f"wavenet.gate_channels={self.gate_channels} must be even (tanh and sigmoid halves)")
        if self.quantization_channels < 2:
            raise WavediffError(f"wavenet.quantization_channels={self.quantization_channels} must be >= 2")

    @property
    def dilations(self) -> tuple[int, ...]:
        """The dilation of each layer."""
        return tuple(2 ** (i % self.dilation_cycle) for i in range(self.layers))

    @property
    def receptive_field(self) -> int:
        """Samples an output depends on, itself included."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    @property
    def output_channels(self) -> int:
        """Channels of the output head: classes, or (weight, mean, log-scale) per logistic."""
        return self.quantization_channels if self.output == "mulaw" else 3 * self.mixtures


@dataclass(frozen=True)
class WaveGradConfig:
    """WaveGrad (Chen et al., ICLR 2021): the mel is upsampled by ``upsample_factors`` (their
    product is the hop) through UBlocks of ``upsample_channels``; the noisy waveform is downsampled
    through DBlocks by the same factors in reverse (all but the first), and at every resolution a
    FiLM module turns the downsampling path's features and the noise level into a scale and a
    shift for the UBlock there. Read only when ``family='wavegrad'``. The defaults are the
    paper's base model (24 kHz, hop 300 = 5 x 5 x 3 x 2 x 2).

    ``downsample_channels``: the waveform's first convolution (kernel 5), then one DBlock per
    factor but the first (the paper: 32, 128, 128, 256, 512). ``upsample_dilations``: the four
    convolutions of each UBlock. ``mel_channels``: the mel's first convolution (kernel 3).
    """

    upsample_factors: tuple[int, ...] = (5, 5, 3, 2, 2)
    upsample_channels: tuple[int, ...] = (512, 512, 256, 128, 128)
    upsample_dilations: tuple[tuple[int, ...], ...] = ((1, 2, 1, 2), (1, 2, 1, 2), (1, 2, 4, 8), (1, 2, 4, 8),
                                                      (1, 2, 4, 8))
    downsample_channels: tuple[int, ...] = (32, 128, 128, 256, 512)
    mel_channels: int = 768
    leaky_slope: float = 0.2

    def __post_init__(self) -> None:
        n = len(self.upsample_factors)
        if n < 1 or any(f < 1 for f in self.upsample_factors):
            raise WavediffError(f"wavegrad.upsample_factors={list(self.upsample_factors)} must be >= 1, at least one")
        for name, value in (("upsample_channels", self.upsample_channels),
                            ("upsample_dilations", self.upsample_dilations),
                            ("downsample_channels", self.downsample_channels)):
            if len(value) != n:
                raise WavediffError(f"wavegrad.{name} has {len(value)} entries; give one per upsampling factor "
                                    f"({n}: {list(self.upsample_factors)})")
        if min(self.upsample_channels) < 1 or min(self.downsample_channels) < 1 or self.mel_channels < 1:
            raise WavediffError("wavegrad channel counts must be >= 1")
        if any(len(d) != 4 or min(d) < 1 for d in self.upsample_dilations):
            raise WavediffError(f"wavegrad.upsample_dilations={[list(d) for d in self.upsample_dilations]}: four "
                                "dilations >= 1 per UBlock")
        object.__setattr__(self, "upsample_dilations", tuple(tuple(d) for d in self.upsample_dilations))

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsample_factors)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a model, its front-end and its training."""

    preset: str = "custom"
    family: str = "diffwave"
    """The model family (:mod:`wavediff.models.family`): ``diffwave``, ``hifigan``, ``wavenet`` or ``wavegrad``."""
    mel: MelConfig = field(default_factory=MelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    hifigan: HiFiGANConfig = field(default_factory=HiFiGANConfig)
    """HiFi-GAN's settings, read when ``family='hifigan'``."""
    wavenet: WaveNetConfig = field(default_factory=WaveNetConfig)
    """WaveNet's settings, read when ``family='wavenet'``."""
    wavegrad: WaveGradConfig = field(default_factory=WaveGradConfig)
    """WaveGrad's settings, read when ``family='wavegrad'``."""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.sampler.uses_mel_inversion and self.model.conditioning != "mel":
            raise WavediffError(f"sampler.start={self.sampler.start!r} and sampler.consistency="
                                f"{self.sampler.consistency!r} invert the mel; they need model.conditioning='mel', "
                                f"not {self.model.conditioning!r}")
        if self.diffusion.prior == "priorgrad" and self.model.conditioning != "mel":
            raise WavediffError(f"diffusion.prior='priorgrad' takes its sigma from the mel; it needs "
                                f"model.conditioning='mel', not {self.model.conditioning!r}")

    @property
    def clip_samples(self) -> int:
        """Training crop (vocoder) or whole clip (class/unconditional) in samples."""
        return self.data.crop_frames * self.mel.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return _from_dict(cls, data, "")

    def with_overrides(self, overrides: Sequence[str]) -> "RunConfig":
        """Apply ``section.key=value`` overrides (values parsed as YAML scalars)."""
        data = self.to_dict()
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise WavediffError(f"override {item!r} must look like section.key=value")
            parts = key.strip().split(".")
            node: Any = data
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise WavediffError(f"override {item!r}: unknown section {p!r}")
                node = node[p]
            if not isinstance(node, dict) or parts[-1] not in node:
                allowed = sorted(node) if isinstance(node, dict) else []
                raise WavediffError(f"override {item!r}: unknown key {parts[-1]!r}; allowed: {allowed}")
            node[parts[-1]] = _parse_scalar(raw)
        return RunConfig.from_dict(data)


def _parse_scalar(raw: str) -> Any:
    """YAML scalar, with ``1e-3``-style numbers read as floats (YAML 1.1 reads them as text)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _typed_value(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against a field's type (ints are accepted for floats, lists for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        if value not in args:
            raise WavediffError(f"{key}={value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _typed_value(key, value, option)
            except WavediffError:
                continue
        raise WavediffError(f"{key}={value!r} must be one of the types {[getattr(a, '__name__', a) for a in args]}")
    if hint is type(None):
        if value is not None:
            raise WavediffError(f"{key}={value!r} must be null")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise WavediffError(f"{key}={value!r} must be a list")
        return tuple(_typed_value(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
    if origin is dict or hint is Any:
        if origin is dict and not isinstance(value, Mapping):
            raise WavediffError(f"{key}={value!r} must be a mapping")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise WavediffError(f"{key}={value!r} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WavediffError(f"{key}={value!r} must be an integer")
        return value
    if hint is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise WavediffError(f"{key}={value!r} must be a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise WavediffError(f"{key}={value!r} must be a number")
        if not math.isfinite(value):
            raise WavediffError(f"{key}={value!r} must be finite")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise WavediffError(f"{key}={value!r} must be a string")
        return value
    return value


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise WavediffError(f"config section {prefix or 'root'!r} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise WavediffError(
            f"unknown config key(s) {[prefix + u for u in unknown]}; allowed: {sorted(prefix + k for k in known)}"
        )
    kwargs: dict[str, Any] = {}
    nested = {"mel": MelConfig, "diffusion": DiffusionConfig, "model": ModelConfig,
              "data": DataConfig, "train": TrainConfig, "sampler": SamplerConfig, "hifigan": HiFiGANConfig,
              "wavenet": WaveNetConfig, "wavegrad": WaveGradConfig}
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if cls is RunConfig and name in nested:
            kwargs[name] = _from_dict(nested[name], value, f"{name}.")
        else:
            kwargs[name] = _typed_value(prefix + name, value, hints[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:  # wrong value types surface here
        raise WavediffError(f"invalid config {prefix or 'root'}: {exc}") from None


def _preset_base() -> RunConfig:
    return RunConfig(preset="base")


def _preset_large() -> RunConfig:
    return RunConfig(
        preset="large",
        model=ModelConfig(residual_channels=128),
        diffusion=DiffusionConfig(num_steps=200, beta_end=0.02,
                                  fast_schedule=(1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.7)),
    )


def _preset_sc09_uncond() -> RunConfig:
    return RunConfig(
        preset="sc09-uncond",
        mel=replace(MEL_PRESETS["audioldm"], name="audioldm"),
        model=ModelConfig(residual_layers=36, residual_channels=256, dilation_cycle=12, conditioning="none"),
        diffusion=DiffusionConfig(num_steps=200, beta_end=0.02,
                                  fast_schedule=(1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.7)),
        data=DataConfig(crop_frames=100),  # 100 frames x hop 160 = 16000 samples: whole 1 s clips
    )


SC09_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _preset_sc09_class() -> RunConfig:
    cfg = _preset_sc09_uncond()
    return replace(cfg, preset="sc09-class",
                   model=replace(cfg.model, conditioning="class", num_classes=10, class_names=SC09_DIGITS))


def _preset_sc09_uncond_cpu() -> RunConfig:
    cfg = _preset_sc09_uncond()
    return replace(
        cfg, preset="sc09-uncond-cpu",
        model=replace(cfg.model, residual_layers=14, residual_channels=64, dilation_cycle=14),
        train=TrainConfig(batch_size=8, learning_rate=4e-4, val_every=500, checkpoint_every=250, log_every=10,
                          precision="bf16"),
        # peak-normalised clips: measured better at equal budget on digits16k (docs/results.md)
        data=replace(cfg.data, normalize="peak"),
    )


def _preset_sc09_class_cpu() -> RunConfig:
    cfg = _preset_sc09_uncond_cpu()   # peak-normalised clips, as the unconditional CPU preset
    return replace(cfg, preset="sc09-class-cpu",
                   model=replace(cfg.model, conditioning="class", num_classes=10, class_names=SC09_DIGITS,
                                 label_dropout=0.1))


def _preset_tiny() -> RunConfig:
    # the measured best of docs/results.md's equal-budget ablation on speech22k: PriorGrad's prior
    # and GLA-Grad's consistency step at every step of the chain, 16 Griffin-Lim iterations each
    return RunConfig(
        preset="tiny",
        model=ModelConfig(residual_layers=12, residual_channels=32, dilation_cycle=6),
        diffusion=DiffusionConfig(prior="priorgrad"),
        sampler=SamplerConfig(consistency="griffin-lim", consistency_steps=50, consistency_iters=16),
        data=DataConfig(crop_frames=32, val_count=4),
        train=TrainConfig(batch_size=8, learning_rate=1e-3, val_every=100, checkpoint_every=100,
                          log_every=10),
    )


MAX_UPSAMPLE_RATE = 16
"""The largest rate one HiFi-GAN upsampling stage takes when the rates are derived from a hop."""


def hifigan_rates_for_hop(hop_length: int, template: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(upsample rates, kernels) for a generator whose stages multiply to ``hop_length``: as many
    stages as ``template`` (a preset's rates), each rate in [2, MAX_UPSAMPLE_RATE], the one closest
    to the template's shape (the smallest sum of |log rate / template rate|; ties to larger early
    rates), each kernel twice its rate as the authors' V1. Raises :class:`WavediffError` when no
    such rates multiply to the hop (e.g. a hop with a prime factor above 16)."""
    def splits(rest: int, stages: int) -> list[tuple[int, ...]]:
        if stages == 1:
            return [(rest,)] if 2 <= rest <= MAX_UPSAMPLE_RATE else []
        return [(r, *tail) for r in range(2, MAX_UPSAMPLE_RATE + 1) if rest % r == 0
                for tail in splits(rest // r, stages - 1)]

    candidates = splits(hop_length, len(template)) if hop_length >= 2 else []
    if not candidates:
        raise WavediffError(f"mel.hop_length={hop_length} cannot be made by {len(template)} HiFi-GAN upsampling "
                            f"stages of rates 2..{MAX_UPSAMPLE_RATE} (template {list(template)}); choose another "
                            "hop or set hifigan.upsample_rates and hifigan.upsample_kernels yourself")
    rates = min(candidates, key=lambda c: (sum(abs(math.log(r / t)) for r, t in zip(c, template)),
                                           [-r for r in c]))
    return rates, tuple(2 * r for r in rates)


def _fit_hifigan_to_hop(config: RunConfig, explicit: bool) -> RunConfig:
    """A HiFi-GAN config whose rates do not make the mel's hop gets rates derived from the hop
    (:func:`hifigan_rates_for_hop`) unless the user set the rates (then the family's check names
    the mismatch)."""
    h = config.hifigan
    if config.family != "hifigan" or explicit or h.hop_length == config.mel.hop_length:
        return config
    rates, kernels = hifigan_rates_for_hop(config.mel.hop_length, h.upsample_rates)
    log.info("hifigan: upsample rates %s (kernels %s) make the hop of %d", list(rates), list(kernels),
             config.mel.hop_length)
    return replace(config, hifigan=replace(h, upsample_rates=rates, upsample_kernels=kernels))


HIFIGAN_VERSIONS: dict[str, HiFiGANConfig] = {
    "v1": HiFiGANConfig(),
    "v2": HiFiGANConfig(initial_channels=128),
    "v3": HiFiGANConfig(upsample_rates=(8, 8, 4), upsample_kernels=(16, 16, 8), initial_channels=256, resblock=2,
                        resblock_kernels=(3, 5, 7), resblock_dilations=((1, 2), (2, 6), (3, 12))),
    # the AudioLDM / AudioLDM 2 vocoder: 16 kHz, 64 bands, hop 160
    "audioldm": HiFiGANConfig(upsample_rates=(5, 4, 2, 2, 2), upsample_kernels=(16, 16, 8, 4, 4),
                              initial_channels=1024),
}


def _preset_hifigan(version: str) -> RunConfig:
    # the authors' training: utterances scaled to a peak of 0.95, segments of 8192 samples, batch 16,
    # AdamW at 2e-4 decayed x0.999 an epoch, no EMA, no clipping
    mel = MEL_PRESETS["audioldm" if version == "audioldm" else "hifigan"]
    return RunConfig(
        preset=f"hifigan-{version}", family="hifigan", mel=mel, hifigan=HIFIGAN_VERSIONS[version],
        data=DataConfig(crop_frames=8192 // mel.hop_length, normalize="peak", peak_level=0.95),
        train=TrainConfig(batch_size=16, learning_rate=2e-4, lr_decay=0.999, ema_decay=0.0, grad_clip_norm=0.0,
                          val_every=1000, checkpoint_every=1000, log_every=50),
    )


def _preset_wavenet(name: str) -> RunConfig:
    # teacher-forced on crops of 8 frames more than the receptive field; Adam at 1e-3 (r9y9's
    # wavenet_vocoder); the trainer's default EMA
    if name == "wavenet-sc09":      # digits, 16 kHz: unconditional or (model.conditioning=class) by label
        mel, wavenet = MEL_PRESETS["audioldm"], WaveNetConfig(layers=20, dilation_cycle=10)
        model = ModelConfig(conditioning="none")
    elif name == "wavenet-large":   # the GPU-sized mel vocoder: 24 layers, 128/256/128 channels, MoL
        mel, wavenet = MEL_PRESETS["diffwave"], WaveNetConfig(output="mol", layers=24, dilation_cycle=12,
                                                              residual_channels=128, gate_channels=256,
                                                              skip_channels=128)
        model = ModelConfig()
    else:                           # wavenet-mulaw: the CPU-sized mel vocoder
        mel, wavenet = MEL_PRESETS["diffwave"], WaveNetConfig()
        model = ModelConfig()
    crop = -(-(wavenet.receptive_field + 8 * mel.hop_length) // mel.hop_length)
    if name == "wavenet-sc09":       # clip models train on and generate whole one-second clips, as SC09's DiffWave
        crop = mel.sample_rate // mel.hop_length
    return RunConfig(preset=name, family="wavenet", mel=mel, wavenet=wavenet, model=model,
                     data=DataConfig(crop_frames=crop, val_count=4),
                     train=TrainConfig(batch_size=4, learning_rate=1e-3, val_every=500, checkpoint_every=250,
                                       log_every=10))


WAVEGRAD_SCHEDULE_6 = (7e-6, 1.4e-4, 2.1e-3, 2.8e-2, 3.5e-1, 7e-1)
"""WaveGrad's 6-iteration inference schedule (beta, from the least noise; "WG-6" in PriorGrad's public configuration)."""
WAVEGRAD_SCHEDULE_3 = (3e-4, 6e-2, 9e-1)
"""WaveGrad's 3-iteration schedule ("WG-3" there)."""


def _preset_wavegrad(name: str) -> RunConfig:
    # the paper's training: continuous noise levels over a 1000-step linear schedule 1e-6..0.01, L1 loss,
    # Adam at 2e-4, segments of 7,200 samples (24 frames at hop 300); batch 256 on 32 TPUs (here 16)
    diffusion = DiffusionConfig(num_steps=1000, beta_start=1e-6, beta_end=0.01, loss="l1", noise_input="level",
                                fast_schedule=WAVEGRAD_SCHEDULE_6, schedules=(WAVEGRAD_SCHEDULE_3,))
    if name == "wavegrad-base":     # the paper's base model on its own front-end: 24 kHz, 128 bands, hop 300
        mel, wavegrad = MEL_PRESETS["wavegrad"], WaveGradConfig()
        train = TrainConfig(batch_size=16, learning_rate=2e-4, val_every=1000, checkpoint_every=1000, log_every=50)
    elif name == "wavegrad":        # the base model on DiffWave's front-end: 22.05 kHz, 80 bands, hop 256
        mel, wavegrad = MEL_PRESETS["diffwave"], WaveGradConfig(upsample_factors=(4, 4, 4, 2, 2))
        train = TrainConfig(batch_size=16, learning_rate=2e-4, val_every=1000, checkpoint_every=1000, log_every=50)
    else:                           # wavegrad-cpu: a quarter of the base model's widths, hop 256
        mel = MEL_PRESETS["diffwave"]
        wavegrad = WaveGradConfig(upsample_factors=(4, 4, 4, 2, 2), upsample_channels=(128, 128, 64, 32, 32),
                                  downsample_channels=(8, 32, 32, 64, 128), mel_channels=192)
        train = TrainConfig(batch_size=8, learning_rate=1e-3, val_every=100, checkpoint_every=100, log_every=10)
    crop = max(1, round(7200 / mel.hop_length))
    return RunConfig(preset=name, family="wavegrad", mel=mel, diffusion=diffusion, wavegrad=wavegrad,
                     data=DataConfig(crop_frames=crop, val_count=4), train=train)


# overrides that take any vocoder preset back to the paper's recipe: N(0, I), audio as recorded, no
# auxiliary loss, the plain chain from noise (benchmarks measuring that recipe pin it with these)
PAPER_RECIPE: tuple[str, ...] = (
    "diffusion.prior=standard", "data.normalize=none", "train.spectral_loss_weight=0",
    *(f"sampler.{f.name}={getattr(SamplerConfig(), f.name)}" for f in fields(SamplerConfig)),
)

PRESETS = {
    "base": _preset_base,
    "large": _preset_large,
    "sc09-uncond": _preset_sc09_uncond,
    "sc09-class": _preset_sc09_class,
    "sc09-uncond-cpu": _preset_sc09_uncond_cpu,
    "sc09-class-cpu": _preset_sc09_class_cpu,
    "tiny": _preset_tiny,
    **{f"hifigan-{v}": (lambda v=v: _preset_hifigan(v)) for v in HIFIGAN_VERSIONS},
    **{n: (lambda n=n: _preset_wavenet(n)) for n in ("wavenet-mulaw", "wavenet-large", "wavenet-sc09")},
    **{n: (lambda n=n: _preset_wavegrad(n)) for n in ("wavegrad-base", "wavegrad", "wavegrad-cpu")},
}


def load_config(preset_or_path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a preset by name, or a YAML/JSON config file; then apply overrides.

    A file may hold a full config or ``{"preset": NAME, ...}`` with only the keys that
    differ from that preset.
    """
    text = str(preset_or_path)
    rates_set = any(o.strip().startswith(("hifigan.upsample_rates", "hifigan.upsample_kernels")) for o in overrides)
    if text in PRESETS:
        return _fit_hifigan_to_hop(PRESETS[text]().with_overrides(overrides), rates_set)
    path = Path(text)
    if not path.is_file():
        raise WavediffError(
            f"unknown preset or missing config file {text!r}; presets: {sorted(PRESETS)}"
        )
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except (OSError, yaml.YAMLError) as exc:
        raise WavediffError(f"cannot read config file {text!r}: {exc}") from None
    if not isinstance(data, dict):
        raise WavediffError(f"config file {text!r} must hold a mapping")
    base_name = data.get("preset")
    if base_name in PRESETS:
        merged = _deep_merge(PRESETS[base_name]().to_dict(), data)
        cfg = RunConfig.from_dict(merged)
    else:
        cfg = RunConfig.from_dict(data)
    section = data.get("hifigan")
    in_file = isinstance(section, Mapping) and bool({"upsample_rates", "upsample_kernels"} & set(section))
    return _fit_hifigan_to_hop(cfg.with_overrides(overrides), rates_set or in_file)


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
