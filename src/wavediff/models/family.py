"""Model families: what a family provides so that the trainer, the vocoder pipeline, evaluation
and checkpoints work for it without knowing what it is.

A *family* (DiffWave, and next HiFi-GAN, WaveNet, WaveGrad) names one kind of waveform model.
A run's config names its family (``RunConfig.family``); checkpoints record it with the config,
and everything that loads a checkpoint asks :func:`get_family` for the family by that name.
The contract is written out in ``docs/families.md``.

A family provides:

- :meth:`ModelFamily.build_model`: the ``nn.Module`` a config describes (its weights are what
  checkpoints store);
- :meth:`ModelFamily.prepare_config`: settings measured on the training data when a run starts
  (recorded in the checkpoint), or the config unchanged;
- :meth:`ModelFamily.objective`: its :class:`TrainingObjective`, the losses of one optimiser
  step in one or more *phases*, each with its own optimiser (a GAN's discriminator, then its
  generator);
- :meth:`ModelFamily.preview`: audio of a validation item for TensorBoard, or ``None``;
- :meth:`ModelFamily.vocoding`: for a mel-conditioned model, its :class:`Vocoding`: mels in,
  waveforms out, at a precision and with the family's own sampling options.

The trainer owns everything else: data, micro-batches, DDP, mixed precision, gradient
clipping, the exponential moving average, checkpoints, logging and stop signals.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from torch import nn

from wavediff.errors import WavediffError

if TYPE_CHECKING:
    from wavediff.config import RunConfig, SamplerConfig

Batch = dict[str, torch.Tensor]
"""A collated training batch: ``audio (B, L)``, ``seed (B,)``, ``replaced (B,)`` and the
conditioning, ``mel (B, n_mels, F)`` or ``label (B,)``."""


@dataclass(frozen=True)
class Phase:
    """One part of an optimiser step: an optimiser over ``parameters`` that minimises the loss
    :meth:`TrainingObjective.loss` returns for this phase's ``name``.

    ``optimizer`` builds that optimiser from the parameters and the learning rate
    (``train.learning_rate``); ``None``: Adam with torch's defaults otherwise."""

    name: str
    parameters: Sequence[nn.Parameter]
    optimizer: Callable[[Sequence[nn.Parameter], float], torch.optim.Optimizer] | None = None


class TrainingObjective(ABC):
    """A family's training objective for one model.

    The trainer runs the phases in order at every optimiser step; in each it zeroes that
    phase's gradients, accumulates ``loss(net, batch, phase, training=True)`` over the step's
    micro-batches (inside autocast), clips the phase's gradients and steps its optimiser. The
    main phase's loss (:attr:`main_phase`, else the first) is the one logged as ``loss``; the
    others are logged as ``loss_<phase>``; every phase's loss is checked for being finite.
    Validation reports the main phase's loss with ``training=False`` (fixed draws, no dropout).

    Under DDP ``net`` is the wrapper: call it (its ``forward``) once per ``loss`` call so that
    the gradients are averaged over the ranks; with several phases the wrapper finds the
    parameters a phase does not use.
    """

    main_phase: str | None = None
    """The phase whose loss is logged as ``loss``, checked first and validated (``None``: the first)."""

    validation_name: str = "loss"
    """What the validation loss measures, its TensorBoard tag ``val/<validation_name>``."""

    @abstractmethod
    def phases(self, model: nn.Module) -> list[Phase]:
        """The phases of an optimiser step, in the order they run (at least one)."""

    @abstractmethod
    def loss(self, net: nn.Module, batch: Batch, phase: str, training: bool) -> torch.Tensor:
        """A scalar loss of ``net`` (the model, or its DDP wrapper) on ``batch`` for ``phase``.
        Randomness comes from the batch's per-item ``seed``, so a step is reproducible."""


def check_chunking(chunk_seconds: float | str | None, max_memory_gb: float) -> None:
    """Refuse a ``chunk_seconds`` other than seconds > 0, ``None`` (one pass), ``'stream'`` or
    ``'auto'``, and a ``max_memory_gb`` that is not > 0: what every family's vocoding takes."""
    if isinstance(chunk_seconds, str) and chunk_seconds not in ("auto", "stream"):
        raise WavediffError(f"chunk_seconds={chunk_seconds!r} is not allowed; give seconds, None, 'stream' or 'auto'")
    if isinstance(chunk_seconds, (int, float)) and not chunk_seconds > 0:
        raise WavediffError(f"chunk_seconds={chunk_seconds} must be > 0 (or None for one pass, 'stream', 'auto')")
    if not max_memory_gb > 0:
        raise WavediffError(f"max_memory_gb={max_memory_gb} must be > 0")


class Vocoding(ABC):
    """A mel-conditioned family's synthesis: mels in, waveforms out (not clipped)."""

    iterative: bool = True
    """Whether the output depends on ``steps``, ``etas`` and ``sampler`` (a diffusion chain); a
    one-pass vocoder (a GAN's generator) sets ``False`` and is evaluated once, whatever the steps."""

    def check_steps(self, steps: int) -> None:
        """Refuse a step count this model cannot run, before any work (default: any)."""

    def describe_chain(self, steps: int, etas: Sequence[float] | None = None) -> str:
        """The chain ``steps`` (and ``etas``) select, in words, for reports ("": the family has none)."""
        return ""

    @abstractmethod
    def vocode(self, mels: Sequence[torch.Tensor], *, steps: int, etas: Sequence[float] | None,
               generators: Sequence[torch.Generator | None], sampler: "SamplerConfig") -> list[torch.Tensor]:
        """``(n_mels, F_i)`` mels -> ``(F_i * hop,)`` fp32 waveforms, one generator per mel.
        ``steps`` and ``etas`` choose an iterative family's chain and ``sampler`` its sampling
        options; a family without them ignores both."""


class ModelFamily(ABC):
    """One kind of waveform model (see the module's docstring)."""

    name: str = ""
    conditionings: tuple[str, ...] = ("mel",)
    """The ``model.conditioning`` values this family trains: ``mel`` (a vocoder), ``class``, ``none``."""

    def check_config(self, config: "RunConfig") -> None:
        """Refuse a config this family cannot build, naming the setting."""
        if config.model.conditioning not in self.conditionings:
            raise WavediffError(f"family {self.name!r} does not train model.conditioning="
                                f"{config.model.conditioning!r}; it trains {list(self.conditionings)}")

    @abstractmethod
    def build_model(self, config: "RunConfig") -> nn.Module:
        """The network a config describes, with fresh weights."""

    inference_parts: tuple[str, ...] | None = None
    """The top-level parts of the model inference loads (a GAN: its generator); ``None``: all.
    A checkpoint holding only these (an imported generator) can start a training run
    (``--init-from``): the other parts start fresh."""

    def build_inference_model(self, config: "RunConfig") -> tuple[nn.Module, tuple[str, ...] | None]:
        """The network inference runs (a GAN: without its discriminators) and :attr:`inference_parts`,
        the parts of a checkpoint's weights it loads. Default: :meth:`build_model`, all."""
        return self.build_model(config), self.inference_parts

    def describe(self, model: nn.Module, config: "RunConfig") -> dict[str, Any]:
        """Facts about ``model`` (built from ``config``) for ``wavediff config`` and the training
        log: at least its parameter count."""
        return {"parameters": sum(p.numel() for p in model.parameters())}

    def prepare_config(self, config: "RunConfig", mels: Callable[[], Iterable[torch.Tensor]] | None) -> "RunConfig":
        """``config`` with any setting the family measures on the training data before the first
        step (recorded in the checkpoint, kept on resume); ``mels()`` iterates a vocoder's
        training mels ``(n_mels, F)`` (``None`` for clip models). The default measures nothing."""
        return config

    @abstractmethod
    def objective(self, config: "RunConfig", device: torch.device) -> TrainingObjective:
        """The training objective for a model of ``config`` on ``device``."""

    def preview(self, model: nn.Module, config: "RunConfig", cond: dict[str, torch.Tensor], length: int,
                generator: torch.Generator, device: torch.device) -> torch.Tensor | None:
        """``(length,)`` audio of ``model`` for one validation item's conditioning (``mel (1, n_mels,
        F)``, ``labels (1,)`` or nothing), for TensorBoard; ``None``: no preview."""
        return None

    vocoding_precisions: tuple[str, ...] | None = None
    """The precisions this family vocodes in (``None``: all the engine's); ``precision='auto'``
    falls back to ``fp32`` where it would pick one not listed."""

    generates_clips: bool = False
    """Whether :meth:`generate_clips` runs this family's class or unconditional models (DiffWave's
    reverse chain is run by :class:`~wavediff.pipelines.Synthesizer` itself)."""

    def generate_clips(self, model: nn.Module, config: "RunConfig", labels: Sequence[int] | None, seeds: Sequence[int],
                       *, temperature: float, batch_size: int, progress: bool) -> torch.Tensor:
        """``(len(seeds), config.clip_samples)`` clips of a class (``labels``, one per clip) or
        unconditional model (``labels=None``); clip ``i`` draws from ``seeds[i]`` alone, so it does
        not depend on ``batch_size`` (clips per call). Not clipped or scaled."""
        raise WavediffError(f"family {self.name!r} does not generate clips from labels or from nothing")

    def vocoding(self, model: nn.Module, config: "RunConfig", device: torch.device, *, precision: str,
                 weights: str, chunk_seconds: float | str | None, max_memory_gb: float) -> Vocoding:
        """How a trained mel-conditioned model of this family vocodes (``precision`` resolved,
        ``weights``, ``chunk_seconds`` and ``max_memory_gb`` as :class:`~wavediff.pipelines.Vocoder`
        takes them; a family may ignore those that do not apply to it)."""
        raise WavediffError(f"family {self.name!r} has no vocoder")


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> ModelFamily:
    """Make ``family`` loadable by its name (a second family of the same name is refused)."""
    if not family.name:
        raise WavediffError(f"{type(family).__name__} has no name")
    if family.name in _FAMILIES and type(_FAMILIES[family.name]) is not type(family):
        raise WavediffError(f"a model family named {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family (tests register their own for a while)."""
    _FAMILIES.pop(name, None)


def family_names() -> list[str]:
    _register_builtin()
    return sorted(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The family of that name, or an error naming the known ones."""
    _register_builtin()
    if name not in _FAMILIES:
        raise WavediffError(f"family={name!r} is not a known model family; choose one of {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def family_of(config: "RunConfig") -> ModelFamily:
    """The family a config names, after checking it can build that config."""
    family = get_family(config.family)
    family.check_config(config)
    return family


def _register_builtin() -> None:
    if "diffwave" not in _FAMILIES:
        from wavediff.models.diffwave.family import DiffWaveFamily

        register_family(DiffWaveFamily())
    if "hifigan" not in _FAMILIES:
        from wavediff.models.hifigan.family import HiFiGANFamily

        register_family(HiFiGANFamily())
    if "wavenet" not in _FAMILIES:
        from wavediff.models.wavenet.family import WaveNetFamily

        register_family(WaveNetFamily())
    if "wavegrad" not in _FAMILIES:
        from wavediff.models.wavegrad.family import WaveGradFamily

        register_family(WaveGradFamily())
