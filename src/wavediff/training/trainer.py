"""The training loop for every model family (:mod:`wavediff.models.family`): one process,
many, or many machines. The family gives the model and the losses of each phase of an
optimiser step (DiffWave: Algorithm 1); this module owns data, batches, DDP, precision,
clipping, the EMA, checkpoints, logs (:mod:`wavediff.training.run_log`) and stop signals.

Single process (CPU or one GPU)::

    wavediff train --config base --data DATA --out runs/base

One machine with 8 GPUs (one process per GPU, NCCL; gloo on CPU)::

    torchrun --standalone --nproc-per-node 8 -m wavediff train --config base --data DATA --out runs/base

Two machines with 8 GPUs each (run on both; node 0's address reachable from node 1; the
run folder on a file system both see)::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint NODE0_HOST:29500 -m wavediff train --config base --data DATA --out /shared/runs/base
    torchrun --nnodes 2 --node-rank 1 ... (the same, with --node-rank 1)

``train.batch_size`` is the global batch: with W processes each takes ``batch_size / W``
items per step, in micro-batches of ``train.micro_batch_size`` whose gradients are
accumulated, so the optimisation is the same whatever W is. Rank 0 alone logs, validates
and writes checkpoints.

Every random choice of step ``n`` (which items, where to crop, and the family's own draws,
for DiffWave the diffusion steps, the noise and the labels dropped) is drawn from generators
seeded by ``(seed, n, slot)`` alone (:mod:`wavediff.data.sampling`). A run resumed from a checkpoint at step ``n``
therefore continues exactly as the uninterrupted run would, and W processes compute the
same step as one process up to the order of floating-point sums.

SIGTERM (as sent by schedulers before pre-emption) and Ctrl-C make every rank finish its
current step; rank 0 then writes a checkpoint and the run exits cleanly. A second Ctrl-C
interrupts at once. A loss that is not finite stops the run before the optimiser applies
it, and the last good checkpoint stays the latest.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from wavediff.audio.mel import MelFrontend
from wavediff.config import RunConfig
from wavediff.data.datasets import ClipDataset, VocoderDataset, screen
from wavediff.data.inspection import InputReport
from wavediff.data.labels import class_order, label_index, read_labelled_entries
from wavediff.data.manifest import AudioEntry, read_entries, split_indices
from wavediff.data.sampling import StepSampler, mix_seed
from wavediff.errors import WavediffError
from wavediff.inference.workspace import keep_freed_memory
from wavediff.models.family import Batch, Phase, family_of
from wavediff.checkpoint import (
    CONFIG_FILE,
    check_state_matches,
    list_checkpoints,
    load_config_file,
    load_training_state,
    load_weights,
    remove_stale_temporaries,
    resolve_checkpoint,
    save_checkpoint,
    weight_part,
    write_text_atomic,
)
from wavediff.training.distributed import DistributedContext
from wavediff.training.ema import ExponentialMovingAverage
from wavediff.training.run_log import RunLog
from wavediff.precision import compute_dtype
from wavediff.training.setup import resolve_training_setup
from wavediff.training.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

VAL_SEED = 20_210_101


class NonFiniteLoss(WavediffError):
    """The loss (or gradient) stopped being finite; the run stops without applying the step."""


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.fit` did. ``stopped_by`` names a signal or ``'time budget'``."""

    run_dir: Path
    start_step: int
    final_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped_by: str | None = None


@dataclass
class _StepOutcome:
    loss: float          # mean over the global batch, of the main phase
    grad_norm: float
    stop: bool           # some rank asked to stop (signal or time budget)
    replaced: int        # items replaced because their file failed, over all ranks
    phase_losses: dict[str, float] = field(default_factory=dict)   # the other phases' mean losses


class Trainer:
    """Trains a model of the config's family on a folder or manifest of audio: a mel-conditioned
    vocoder on crops, or a class-conditional / unconditional model on whole clips (labels from the
    manifest, Speech Commands file names or label folders; see :mod:`wavediff.data.labels`).
    With ``model.label_dropout`` > 0 each label is replaced by the "no label" index with that
    probability, which trains the unconditional branch of classifier-free guidance.

    Args:
        workers: DataLoader worker processes per rank; ``None``: 0 on CPU (the model needs
            the cores), else ``min(4, cpus per process)``.
        distributed: this process's place in a torchrun group
            (:func:`wavediff.training.distributed.init_distributed`); ``None``: one process on ``device``.
    """

    def __init__(self, config: RunConfig, data: str | Path, run_dir: str | Path, *,
                 resume: bool = False, device: str = "auto", max_minutes: float | None = None,
                 max_cpu_hours: float | None = None, progress: bool = True, workers: int | None = None,
                 distributed: DistributedContext | None = None, init_from: str | Path | None = None) -> None:
        from wavediff.devices import pick_device

        self.ctx = distributed if distributed is not None else DistributedContext(device=pick_device(device))
        self.device = self.ctx.device
        if self.device.type == "cpu":
            # large activations freed every step come back from the heap instead of being faulted in again
            keep_freed_memory()
        self.run_dir = Path(run_dir)
        self.max_minutes, self.max_cpu_hours = max_minutes, max_cpu_hours
        self.progress = progress and self.ctx.is_main
        config = self._run_config(resolve_training_setup(config, self.device), resume)
        self.accumulation, self.micro_batch = _micro_batches(config.train.batch_size,
                                                             config.train.micro_batch_size, self.ctx.world_size)
        self.workers = _default_workers(self.device) if workers is None else workers
        if self.workers < 0:
            raise WavediffError(f"workers={self.workers} must be >= 0")
        self.frontend = MelFrontend(config.mel)
        self.family = family_of(config)
        self.config = config = self._load_data(config, data)
        self._build(config)
        self.step = 0
        if self.resume_from is not None:
            self._load_state(self.resume_from)
        elif init_from is not None:
            self._warm_start(init_from)
        self._stop_signal: str | None = None
        self._last_saved = self.step   # the step of the newest checkpoint written or loaded

    def _run_config(self, config: RunConfig, resume: bool) -> RunConfig:
        """The config this run trains with: the checkpoint's when resuming (with the given
        ``max_steps``), else ``config``; refuses a run folder that holds checkpoints without ``resume``."""
        existing = list_checkpoints(self.run_dir / "checkpoints")
        self.resume_from: Path | None = None
        if resume and existing:
            self.resume_from = resolve_checkpoint(self.run_dir)
            saved = resolve_training_setup(load_config_file(self.resume_from), self.device)  # pre-"auto" runs
            if _without_steps(saved) != _without_steps(config):
                log.warning("resuming with the checkpoint's config; the given config differs (max_steps may change)")
            config = RunConfig.from_dict({**saved.to_dict(), "train": {**saved.train.__dict__,
                                                                       "max_steps": config.train.max_steps}})
        elif resume:
            log.info("--resume: no checkpoint in %s yet; starting a new run", self.run_dir)
        elif existing:
            raise WavediffError(
                f"{str(self.run_dir)!r} already holds checkpoints; pass --resume to continue it or choose another --out"
            )
        if config.train.precision == "fp16" and self.device.type != "cuda":
            raise WavediffError("train.precision='fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
        return config

    def _load_data(self, config: RunConfig, data: str | Path) -> RunConfig:
        """Read and screen the data, split it, and return ``config`` with what was measured on it
        (class names, the family's settings, the source peak)."""
        kind = config.model.conditioning
        # files a manifest lists but that are gone are skipped and counted by the data check
        entries = read_entries(data, missing="keep") if kind == "mel" else read_labelled_entries(data, missing="keep")
        labels: list[int] | None = None
        if kind == "class":
            config, labels = _class_labels(config, entries, data)
        self.config = config
        self.train_set, self.val_set, self.input_report = self._screened_data(entries, labels, data)
        return self._with_source_peak(self.family.prepare_config(config, self._training_mels()))

    def _build(self, config: RunConfig) -> None:
        """The model (from the seed), its DDP wrapper, the objective, one optimiser per phase,
        the EMA and the loss scaler."""
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed, global RNG untouched
            torch.manual_seed(mix_seed(config.train.seed, 0) % (2 ** 63))
            self.model = self.family.build_model(config).to(self.device)
        if hasattr(self.model, "implementation"):
            self.model.implementation = config.train.implementation
        torch.manual_seed(mix_seed(config.train.seed, 3, self.ctx.rank))  # rank-aware global RNG
        self.net: torch.nn.Module = self.model
        self.objective = self.family.objective(config, self.device)
        self.phases: list[Phase] = self.objective.phases(self.model)
        names = [phase.name for phase in self.phases]
        self.main_phase = self.objective.main_phase or names[0]
        if self.main_phase not in names or len(set(names)) != len(names):
            raise WavediffError(f"the {self.family.name} objective's phases {names} must have distinct names and "
                                f"include its main phase {self.main_phase!r}")
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # several phases: each uses part of the network, so DDP looks for the unused parameters
            self.net = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=len(names) > 1)
        lr = config.train.learning_rate
        self.optimizers = {phase.name: phase.optimizer(phase.parameters, lr) if phase.optimizer is not None
                           else torch.optim.Adam(phase.parameters, lr=lr) for phase in self.phases}
        self.ema = ExponentialMovingAverage(self.model, config.train.ema_decay)
        self.scaler = torch.amp.GradScaler(enabled=config.train.precision == "fp16" and self.device.type == "cuda")

    def _warm_start(self, checkpoint: str | Path) -> None:
        """Start from another checkpoint's (EMA) weights, e.g. a bundled model's: the network and its
        average begin there, the optimiser and the step count afresh. The average keeps its full
        decay from the first step, so it is not pulled to the early updates of a fresh optimiser."""
        ckpt = resolve_checkpoint(checkpoint)
        weights = load_weights(ckpt)
        # a checkpoint of the inference network alone (a GAN's imported generator): the parts it
        # lacks (the discriminators) start fresh
        present = {weight_part(k) for k in weights}
        fresh = {k: v for k, v in self.model.state_dict().items() if weight_part(k) not in present}
        if fresh and present == set(self.family.inference_parts or ()):
            weights = {**weights, **fresh}
            log.info("--init-from %s holds no %s: those parts start from fresh weights", ckpt,
                     sorted({weight_part(k) for k in fresh}))
        check_state_matches(self.model, weights, f"--init-from {str(ckpt)!r}")
        self.model.load_state_dict(weights)
        self.ema.load_state_dict(weights, num_updates=10 ** 6)
        log.info("weights from %s (the optimiser starts afresh)", ckpt)

    # ------------------------------------------------------------------ data
    def _screened_data(self, entries: list[AudioEntry], labels: list[int] | None, data: str | Path
                       ) -> tuple[VocoderDataset | ClipDataset, VocoderDataset | ClipDataset | None, InputReport]:
        """Read every file once (split over the ranks), drop the unusable ones, split train/validation."""
        config = self.config
        dataset: VocoderDataset | ClipDataset
        if config.model.conditioning == "mel":
            dataset = VocoderDataset(entries, self.frontend, config.data.crop_frames, self.run_dir / "cache" / "mels",
                                     peak_level=config.data.normalization_peak)
        else:
            dataset = ClipDataset(entries, config.mel.sample_rate, config.clip_samples, labels,
                                  peak_level=config.data.normalization_peak)
        report = InputReport()
        usable = screen(dataset, report, rank=self.ctx.rank, world_size=self.ctx.world_size,
                        sum_over_ranks=self.ctx.all_reduce_sum if self.ctx.enabled else None,
                        progress=self.progress, min_samples=config.clip_samples)
        if not usable:
            raise WavediffError(f"none of the {len(entries)} audio files in {str(data)!r} can be used ({report.summary()})")
        log.info("checked %d audio files: %d usable; %s", len(entries), len(usable), report.summary())
        dataset = dataset.keep(usable)
        train_idx, val_idx = split_indices(len(usable), config.data.val_count, config.data.val_fraction,
                                           seed=config.train.seed)
        log.info("data: %d training and %d validation files from %s", len(train_idx), len(val_idx), data)
        return dataset.keep(train_idx), (dataset.keep(val_idx) if val_idx else None), report

    def _training_mels(self) -> Any:
        """For a vocoder's data, a callable iterating its training mels ``(n_mels, F)``; else ``None``."""
        if not isinstance(self.train_set, VocoderDataset):
            return None
        train_set = self.train_set
        return lambda: (torch.from_numpy(train_set.mel(i, mmap=False)) for i in range(len(train_set)))

    def _with_source_peak(self, config: RunConfig) -> RunConfig:
        """``config`` with the training clips' median peak as recorded (``data.source_peak``), for a
        generation model trained on peak-normalised clips, if it is to be measured."""
        d = config.data
        if config.model.conditioning == "mel" or d.normalize != "peak" or d.source_peak > 0:
            return config
        train_set = self.train_set
        peaks = [d.peak_level / train_set.gain(i) for i in range(len(train_set))]
        source = float(min(1.0, np.median(peaks)))
        log.info("peak normalisation: median peak of the training clips %.4g (data.source_peak); "
                 "generated clips are scaled back to it", source)
        return replace(config, data=replace(d, source_peak=source))

    def _loader(self) -> tuple[DataLoader, StepSampler]:
        sampler = StepSampler(len(self.train_set), self.config.train.batch_size, num_replicas=self.ctx.world_size,
                              rank=self.ctx.rank, seed=self.config.train.seed)
        extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": 4} if self.workers else {}
        loader = DataLoader(self.train_set, batch_size=self.micro_batch, sampler=sampler, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda", **extra)
        return loader, sampler

    def _fixed_batch(self, dataset: VocoderDataset | ClipDataset, first: int, size: int) -> Batch:
        """Items ``first … first + size - 1`` (mod N) with seeds fixed for validation."""
        n = len(dataset)
        return default_collate([dataset[((first + k) % n, mix_seed(VAL_SEED, first + k))] for k in range(size)])

    # ------------------------------------------------------------------ state
    def _load_state(self, ckpt: Path) -> None:
        state = load_training_state(ckpt)
        check_state_matches(self.model, state["model"], f"checkpoint {str(ckpt)!r}")
        check_state_matches(self.model, state["ema"], f"checkpoint {str(ckpt)!r} (EMA)")
        self.model.load_state_dict(state["model"])
        saved = state.get("optimizers")
        if saved is None and "optimizer" in state and len(self.optimizers) == 1:   # checkpoints before phases
            saved = {self.phases[0].name: state["optimizer"]}
        if not isinstance(saved, dict) or sorted(saved) != sorted(self.optimizers):
            found = sorted(saved) if isinstance(saved, dict) else None
            raise WavediffError(f"checkpoint {str(ckpt)!r} holds optimiser states {found}; this model's training "
                                f"has {sorted(self.optimizers)}")
        try:
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(saved[name])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise WavediffError(f"checkpoint {str(ckpt)!r}: the optimizer state does not fit the model: {exc}") from None
        self.ema.load_state_dict(state["ema"], int(state["ema_updates"]))
        self.step = int(state["step"])
        rng = state.get("rng")
        if rng and all(v.shape[0] == self.ctx.world_size for v in rng.values()):
            restore_rng_state({k: v[self.ctx.rank] for k, v in rng.items()})
        elif rng:
            world = next(iter(rng.values())).shape[0]
            log.warning("the checkpoint holds random states of %d process(es), this run has %d; the global random "
                        "generators are reseeded (training's own draws do not depend on them)", world,
                        self.ctx.world_size)
            torch.manual_seed(mix_seed(self.config.train.seed, 3, self.ctx.rank, self.step))
        log.info("resumed from %s at step %d", ckpt, self.step)

    def _gathered_rng(self, collective: bool) -> dict[str, torch.Tensor]:
        """Every rank's global RNG state, stacked ``(W, …)`` (only this rank's when not ``collective``)."""
        local = capture_rng_state()
        if not collective:
            return {k: v.unsqueeze(0) for k, v in local.items()}
        return {k: self.ctx.all_gather(v) for k, v in sorted(local.items())}

    def _training_state(self, rng: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "ema": self.ema.state_dict(),
            "ema_updates": self.ema.num_updates,
            "step": self.step,
            "rng": rng,
            "world_size": self.ctx.world_size,
        }

    def save(self, collective: bool = True) -> Path | None:
        """Write a checkpoint on rank 0 (every rank must call this when ``collective``); its path on rank 0."""
        rng = self._gathered_rng(collective and self.ctx.enabled)
        if not self.ctx.is_main:
            return None
        path = save_checkpoint(self.run_dir / "checkpoints", self.step, self.config, self.ema.state_dict(),
                               self._training_state(rng), self.config.train.keep_last)
        log.info("saved checkpoint %s", path)
        return path

    # ------------------------------------------------------------------ steps
    def _autocast(self) -> Any:
        p = self.config.train.precision
        if p == "fp32":
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=compute_dtype(p))

    def train_step(self, micro_batches: list[Batch], stop: bool = False) -> _StepOutcome:
        """One optimiser step over this rank's micro-batches of the global batch: every phase of
        the family's objective in turn (:class:`~wavediff.models.family.TrainingObjective`).

        Each phase's mean loss, the stop requests and the replaced-item counts are summed over the
        ranks before its optimiser runs; a loss that is not finite raises :class:`NonFiniteLoss`
        with that phase's weights untouched.
        """
        self.net.train()
        losses: dict[str, float] = {}
        grad_norm, summed = 0.0, torch.zeros(3, dtype=torch.float64)
        for phase in self.phases:
            loss, norm, summed = self._run_phase(phase, micro_batches, stop)
            losses[phase.name] = loss
            if phase.name == self.main_phase:
                grad_norm = norm
        self.ema.update(self.model)
        main = self.main_phase
        return _StepOutcome(losses[main], grad_norm, bool(summed[1] > 0), int(summed[2]),
                            {name: value for name, value in losses.items() if name != main})

    def _run_phase(self, phase: Phase, micro_batches: list[Batch], stop: bool
                   ) -> tuple[float, float, torch.Tensor]:
        """Accumulate one phase's gradients over the micro-batches and step its optimiser:
        ``(mean loss over the global batch, gradient norm, summed [loss, stop, replaced])``."""
        optimizer = self.optimizers[phase.name]
        optimizer.zero_grad(set_to_none=True)
        total, replaced = 0.0, 0
        for k, batch in enumerate(micro_batches):
            last = k == len(micro_batches) - 1
            sync = nullcontext() if last or self.net is self.model else self.net.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    loss = self.objective.loss(self.net, batch, phase.name, training=True)
                self.scaler.scale(loss / len(micro_batches)).backward()
            total += float(loss.detach())
            replaced += int(batch["replaced"].sum())
        local = torch.tensor([total / len(micro_batches), float(stop), float(replaced)], dtype=torch.float64)
        summed = self.ctx.all_reduce_sum(local)
        mean_loss = float(summed[0]) / self.ctx.world_size
        what = "loss" if phase.name == self.main_phase else f"{phase.name} loss"
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(f"the {what} became {mean_loss} at step {self.step + 1}; the run stops without "
                                "applying that step")
        self.scaler.unscale_(optimizer)
        clip = self.config.train.grad_clip_norm or math.inf     # 0: measure the norm, clip nothing
        grad_norm = float(torch.nn.utils.clip_grad_norm_(phase.parameters, clip))
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            raise NonFiniteLoss(f"the gradient norm ({phase.name}) became {grad_norm} at step {self.step + 1}; the "
                                "run stops without applying that step")
        self.scaler.step(optimizer)
        self.scaler.update()
        return mean_loss, grad_norm, summed

    @torch.no_grad()
    def validation_loss(self, model: torch.nn.Module | None = None) -> float | None:
        """Mean loss of ``model`` (default: the trained weights) on fixed validation crops,
        diffusion steps and noise, so values are comparable across steps."""
        if self.val_set is None:
            return None
        if model is None:
            self.model.eval()
            model = self.model
        bs = min(self.config.train.batch_size, len(self.val_set))
        total = 0.0
        for b in range(self.config.train.val_batches):
            batch = self._fixed_batch(self.val_set, b * bs, bs)
            total += float(self.objective.loss(model, batch, self.main_phase, training=False))
        return total / self.config.train.val_batches

    def ema_model(self) -> torch.nn.Module:
        """A copy of the network holding the EMA weights, in eval mode."""
        model = self.family.build_model(self.config).to(self.device)
        model.load_state_dict(self.ema.state_dict())
        return model.eval()

    @torch.no_grad()
    def validation_audio(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(recording, ``model``'s audio) for the first validation clip, from the family's preview:
        the vocoder resynthesises it from its mel; a class model generates its label, an
        unconditional one any clip. ``None`` without validation data or a preview."""
        if self.val_set is None:
            return None
        g = torch.Generator().manual_seed(VAL_SEED)
        if isinstance(self.val_set, VocoderDataset):
            mel = torch.from_numpy(self.val_set.mel(0, mmap=False)[:, :self.config.data.crop_frames * 4]).unsqueeze(0)
            length = mel.shape[-1] * self.frontend.hop_length
            cond: dict[str, torch.Tensor] = {"mel": mel.to(self.device)}
            ref = torch.from_numpy(self.val_set.audio(0)[:length])
        else:
            audio, labels = self.val_set.batch([0], g, random_offset=False)
            length, ref = audio.shape[-1], audio[0]
            cond = {} if labels is None else {"labels": labels.to(self.device)}
        out = self.family.preview(model, self.config, cond, length, g, self.device)
        return None if out is None else (ref, out.clamp(-1, 1).cpu())

    # ------------------------------------------------------------------ loop
    def request_stop(self, reason: str) -> None:
        """Finish the current step on every rank, save and return from :meth:`fit` (signal-safe)."""
        self._stop_signal = reason

    def fit(self, max_steps: int | None = None) -> TrainResult:
        """Train until ``max_steps`` (default ``train.max_steps``), the time budget, or SIGTERM/Ctrl-C."""
        cfg = self.config.train
        target = max_steps if max_steps is not None else cfg.max_steps
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.run_dir / "checkpoints")
            write_text_atomic(self.run_dir / CONFIG_FILE, self.config.to_json())
        runlog = RunLog(self.run_dir, self.step, enabled=self.ctx.is_main, progress=self.progress,
                        total=None if self.max_minutes or self.max_cpu_hours else target, log_every=cfg.log_every)
        result = TrainResult(self.run_dir, self.step, self.step)
        self._log_setup()
        self._last_saved = self.step   # the step of the newest checkpoint
        failed: BaseException | None = None
        previous = self._install_signal_handlers()
        try:
            self._train_epochs(target, runlog, result)
        except NonFiniteLoss as exc:
            failed = exc
            last = list_checkpoints(self.run_dir / "checkpoints")
            kept = f"the last good checkpoint is {str(last[-1])!r}" if last else "no checkpoint had been written yet"
            raise NonFiniteLoss(f"{exc}; {kept}; try a lower train.learning_rate or check the data") from None
        except BaseException as exc:
            failed = exc
            raise
        finally:
            self._restore_signal_handlers(previous)
            if not isinstance(failed, NonFiniteLoss) and self.step != self._last_saved:
                if failed is not None:
                    log.warning("%s at step %d; saving a checkpoint", type(failed).__name__, self.step)
                runlog.flush()
                # after an error another rank may be gone: save without collectives
                result.checkpoint = self.save(collective=failed is None)
            runlog.close()
        result.final_step = self.step
        return result

    def _log_setup(self) -> None:
        cfg = self.config.train
        facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.family.describe(self.model, self.config).items())
        log.info("model: %s, %s preset, %s; %d process(es) on %s, %d threads each; "
                 "global batch %d = %d x %d micro-batch(es) of %d; %d loader worker(s) per process; "
                 "%s precision, %s implementation",
                 self.family.name, self.config.preset, facts,
                 self.ctx.world_size, self.device, torch.get_num_threads(), cfg.batch_size, self.ctx.world_size,
                 self.accumulation, self.micro_batch, self.workers, cfg.precision, cfg.implementation)

    def _train_epochs(self, target: int, runlog: RunLog, result: TrainResult) -> None:
        """Steps until ``target`` or a stop, epoch by epoch (a resumed run starts inside its
        epoch); sets ``result.stopped_by`` when stopped."""
        loader, sampler = self._loader()
        per_epoch = sampler.steps_per_epoch
        while self.step < target and result.stopped_by is None:
            epoch, position = divmod(self.step, per_epoch)
            sampler.set_epoch(epoch)
            sampler.set_start_step(position)
            self._set_learning_rate(epoch)
            replaced_in_epoch = 0
            batches = iter(loader)
            for _ in range(position, per_epoch):
                budget_over = self._budget_spent(runlog)
                out = self.train_step([next(batches) for _ in range(self.accumulation)],
                                      stop=bool(budget_over) or self._stop_signal is not None)
                self.step += 1
                replaced_in_epoch += out.replaced
                result.losses.append((self.step, out.loss))
                runlog.step(self.step, out.loss, out.grad_norm, out.phase_losses, last=self.step == target)
                self._after_step(runlog, result)
                if out.stop:
                    result.stopped_by = self._stop_signal or "time budget"
                    if budget_over:
                        log.info("%s reached at step %d", budget_over, self.step)
                    else:
                        log.warning("stopping at step %d (%s)", self.step, result.stopped_by)
                    break
                if self.step >= target:
                    break
            else:
                log.info("epoch %d done at step %d: %d files; %s; %d item(s) replaced this epoch",
                         epoch + 1, self.step, len(self.train_set), self.input_report.summary(), replaced_in_epoch)
                if replaced_in_epoch:
                    self.input_report.add("replaced", replaced_in_epoch)

    def _set_learning_rate(self, epoch: int) -> None:
        """Every optimiser's rate for ``epoch``: ``train.learning_rate * train.lr_decay ** epoch``
        (from the step alone, so a resumed run continues the decay exactly)."""
        cfg = self.config.train
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate * cfg.lr_decay ** epoch

    def _budget_spent(self, runlog: RunLog) -> str:
        """The budget this call of :meth:`fit` has used up ('' while none is)."""
        if self.max_minutes is not None and runlog.seconds > self.max_minutes * 60:
            return f"time budget of {self.max_minutes:g} minutes"
        if self.max_cpu_hours is not None and runlog.cpu_seconds > self.max_cpu_hours * 3600:
            return f"CPU budget of {self.max_cpu_hours:g} CPU-hours"
        return ""

    def _after_step(self, runlog: RunLog, result: TrainResult) -> None:
        """Validation and checkpoints at their cadence."""
        cfg = self.config.train
        if self.ctx.is_main and self.step % cfg.val_every == 0:
            self._validate(runlog, result)
        if self.step % cfg.checkpoint_every == 0:
            runlog.flush()  # every step a checkpoint holds has its metrics line on disk
            result.checkpoint = self.save()
            self._last_saved = self.step

    def _install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM and the first SIGINT ask for a clean stop; a second SIGINT interrupts."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("%s received: finishing the current step, then saving a checkpoint", name)
            self.request_stop(name)

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def _validate(self, runlog: RunLog, result: TrainResult) -> None:
        if self.val_set is None:
            return
        ema_model = self.ema_model()
        val = self.validation_loss()
        val_ema = self.validation_loss(ema_model)
        assert val is not None and val_ema is not None
        runlog.validation(self.step, val, val_ema, self.objective.validation_name)
        result.val_losses.append((self.step, val_ema))
        log.info("step %d: validation loss %.4f (EMA %.4f)", self.step, val, val_ema)
        pair = self.validation_audio(ema_model)
        if pair is not None:
            sr = self.config.mel.sample_rate
            runlog.audio("val/recording", pair[0], self.step, sr)
            runlog.audio("val/vocoded_fast", pair[1], self.step, sr)


def _micro_batches(batch_size: int, micro_batch_size: int, world_size: int) -> tuple[int, int]:
    """(accumulation steps, micro-batch size) that make ``batch_size`` with ``world_size`` processes."""
    if batch_size % world_size:
        raise WavediffError(f"train.batch_size={batch_size} must be divisible by the number of processes "
                            f"({world_size}) so that the global batch stays the same")
    per_rank = batch_size // world_size
    micro = micro_batch_size or per_rank
    if micro > per_rank or per_rank % micro:
        raise WavediffError(f"train.micro_batch_size={micro_batch_size} must divide the {per_rank} items each of the "
                            f"{world_size} process(es) takes of train.batch_size={batch_size}")
    return per_rank // micro, micro


def _default_workers(device: torch.device) -> int:
    """0 on CPU (the model needs the cores); on GPUs up to 4 per process, leaving a core each."""
    if device.type != "cuda":
        return 0
    per_process = (os.cpu_count() or 1) // max(1, torch.cuda.device_count())
    return max(0, min(4, per_process - 1))


def _class_labels(config: RunConfig, entries: list[AudioEntry], data: str | Path) -> tuple[RunConfig, list[int]]:
    """Each entry's class index; the config gains the data's class names if it has none."""
    missing = [e.path for e in entries if e.label is None]
    if missing:
        raise WavediffError(
            f"{len(missing)} of {len(entries)} clips in {str(data)!r} have no label (first: {str(missing[0])!r}); "
            "give a manifest with a label column, Speech Commands file names (Seven_<speaker>_nohash_0.wav) "
            "or one folder per label"
        )
    names = config.model.class_names
    if not names:
        names = class_order([str(e.label) for e in entries])
        if config.model.num_classes != len(names):
            log.info("the data has %d classes; model.num_classes=%d becomes %d", len(names),
                     config.model.num_classes, len(names))
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, num_classes=len(names), class_names=names))
    try:
        labels = [label_index(str(e.label), names) for e in entries]
    except WavediffError as exc:
        raise WavediffError(f"{exc} (labels come from {str(data)!r} and the model's classes)") from None
    counts = {n: labels.count(i) for i, n in enumerate(names)}
    log.info("classes: %s", ", ".join(f"{n} {c}" for n, c in counts.items()))
    return config, labels


def _without_steps(config: RunConfig) -> dict[str, Any]:
    """``config`` as a dict without what a resumed run may change or has measured since it started."""
    d = config.to_dict()
    d["train"].pop("max_steps")
    d["diffusion"].pop("prior_energy_max")
    d["data"].pop("source_peak")
    return d
