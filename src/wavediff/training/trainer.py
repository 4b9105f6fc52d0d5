"""The training loop (Algorithm 1 of DiffWave) with validation, EMA and checkpoints.

Single process::

    wavediff train --config base --data DATA --out runs/base

Every random choice of step ``n`` (which utterances, where to crop, which diffusion
steps, which noise) is drawn from generators seeded by ``(seed, n)`` and ``(seed, epoch)``
alone, so a run resumed from a checkpoint at step ``n`` continues exactly as the
uninterrupted run would: the checkpoint only needs the weights, the optimizer, the
EMA and ``n``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wavediff.audio.mel import MelFrontend
from wavediff.config import RunConfig
from wavediff.data.datasets import ClipDataset, VocoderDataset
from wavediff.data.labels import class_order, label_index, read_labelled_entries
from wavediff.data.manifest import AudioEntry, read_entries, split_indices
from wavediff.diffusion.objective import diffusion_loss
from wavediff.devices import pick_device
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import linear_schedule, sampling_schedule
from wavediff.errors import WavediffError
from wavediff.models.diffwave import build_model, count_parameters
from wavediff.training.checkpoint import (
    CONFIG_FILE,
    check_state_matches,
    list_checkpoints,
    load_config_file,
    load_training_state,
    resolve_checkpoint,
    save_checkpoint,
    write_text_atomic,
)
from wavediff.training.ema import ExponentialMovingAverage

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
VAL_SEED = 20_210_101


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x ^= (p + 0x9E3779B97F4A7C15 + ((x << 6) & 0xFFFFFFFFFFFFFFFF) + (x >> 2)) & 0xFFFFFFFFFFFFFFFF
        x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


@dataclass
class TrainResult:
    """What a call to :meth:`Trainer.fit` did."""

    run_dir: Path
    start_step: int
    final_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    checkpoint: Path | None = None


class Trainer:
    """Trains a DiffWave on a folder or manifest of audio: a mel-conditioned vocoder on
    crops, or a class-conditional / unconditional model on whole clips (labels from the
    manifest, Speech Commands file names or label folders; see :mod:`wavediff.data.labels`).
    With ``model.label_dropout`` > 0 each label is replaced by the "no label" index with that
    probability, which trains the unconditional branch of classifier-free guidance."""

    def __init__(self, config: RunConfig, data: str | Path, run_dir: str | Path, *,
                 resume: bool = False, device: str = "auto", max_minutes: float | None = None,
                 progress: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.device = pick_device(device)
        self.max_minutes = max_minutes
        self.progress = progress
        existing = list_checkpoints(self.run_dir / "checkpoints")
        self.resume_from: Path | None = None
        if resume and existing:
            self.resume_from = resolve_checkpoint(self.run_dir)
            saved = load_config_file(self.resume_from)
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
        self.frontend = MelFrontend(config.mel)
        self.schedule = linear_schedule(config.diffusion.num_steps, config.diffusion.beta_start,
                                        config.diffusion.beta_end)
        kind = config.model.conditioning
        entries = read_entries(data) if kind == "mel" else read_labelled_entries(data)
        labels: list[int] | None = None
        if kind == "class":
            config, labels = _class_labels(config, entries, data)
        self.config = config
        train_idx, val_idx = split_indices(len(entries), config.data.val_count, config.data.val_fraction,
                                           seed=config.train.seed)
        log.info("data: %d training and %d validation files from %s", len(train_idx), len(val_idx), data)
        self.train_set: VocoderDataset | ClipDataset
        self.val_set: VocoderDataset | ClipDataset | None
        if kind == "mel":
            cache = self.run_dir / "cache" / "mels"
            self.train_set = VocoderDataset([entries[i] for i in train_idx], self.frontend, config.data.crop_frames,
                                            cache, progress)
            self.val_set = (VocoderDataset([entries[i] for i in val_idx], self.frontend, config.data.crop_frames,
                                           cache, progress) if val_idx else None)
        else:
            def clips(idx: list[int]) -> ClipDataset:
                return ClipDataset([entries[i] for i in idx], config.mel.sample_rate, config.clip_samples,
                                   None if labels is None else [labels[i] for i in idx], progress)
            self.train_set = clips(train_idx)
            self.val_set = clips(val_idx) if val_idx else None
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed, global RNG untouched
            torch.manual_seed(_mix_seed(config.train.seed, 0) % (2 ** 63))
            self.model = build_model(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.train.learning_rate)
        self.ema = ExponentialMovingAverage(self.model, config.train.ema_decay)
        self.step = 0
        if self.resume_from is not None:
            self._load_state(self.resume_from)
        self.scaler = torch.amp.GradScaler(enabled=config.train.precision == "fp16" and self.device.type == "cuda")

    # ------------------------------------------------------------------ state
    def _load_state(self, ckpt: Path) -> None:
        state = load_training_state(ckpt)
        check_state_matches(self.model, state["model"], f"checkpoint {str(ckpt)!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"], int(state["ema_updates"]))
        self.step = int(state["step"])
        log.info("resumed from %s at step %d", ckpt, self.step)

    def _training_state(self) -> dict[str, Any]:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict(),
            "ema_updates": self.ema.num_updates,
            "step": self.step,
        }

    def save(self) -> Path:
        path = save_checkpoint(self.run_dir / "checkpoints", self.step, self.config, self.ema.state_dict(),
                               self._training_state(), self.config.train.keep_last)
        log.info("saved checkpoint %s", path)
        return path

    # ------------------------------------------------------------------ data
    def _batch_indices(self, step: int) -> list[int]:
        n = len(self.train_set)
        bs = self.config.train.batch_size
        per_epoch = max(1, n // bs)
        epoch, pos = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(_mix_seed(self.config.train.seed, 1, epoch))
        order = torch.randperm(n, generator=g)
        if n < bs:
            order = order.repeat(math.ceil(bs / n))
        return order[pos * bs:(pos + 1) * bs].tolist()

    def _autocast(self) -> Any:
        p = self.config.train.precision
        if p == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if p == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _denoiser(self, model: torch.nn.Module) -> Any:
        def call(x: torch.Tensor, t: torch.Tensor, **cond: torch.Tensor) -> torch.Tensor:
            return model(x, t, **cond)
        return call

    def _batch(self, dataset: VocoderDataset | ClipDataset, indices: list[int], generator: torch.Generator,
               training: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Audio ``(B, L)`` on the device and the conditioning keyword arguments of the model."""
        if isinstance(dataset, VocoderDataset):
            audio, mel = dataset.batch(indices, generator)
            return audio.to(self.device), {"mel": mel.to(self.device)}
        audio, labels = dataset.batch(indices, generator, random_offset=training)
        if self.config.model.conditioning != "class":
            return audio.to(self.device), {}
        assert labels is not None
        null = self.config.model.null_label
        if training and null is not None:
            drop = torch.rand(labels.shape, generator=generator) < self.config.model.label_dropout
            labels = torch.where(drop, torch.full_like(labels, null), labels)
        return audio.to(self.device), {"labels": labels.to(self.device)}

    # ------------------------------------------------------------------ steps
    def train_step(self, step: int) -> tuple[float, float]:
        """One optimiser step; returns (loss, gradient norm before clipping)."""
        self.model.train()
        g = torch.Generator().manual_seed(_mix_seed(self.config.train.seed, 2, step))
        audio, cond = self._batch(self.train_set, self._batch_indices(step), g, training=True)
        with self._autocast():
            loss = diffusion_loss(self._denoiser(self.model), audio, self.schedule,
                                  loss_type=self.config.diffusion.loss, cond=cond, generator=g)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.ema.update(self.model)
        return float(loss.detach()), float(grad_norm)

    @torch.no_grad()
    def validation_loss(self, model: torch.nn.Module | None = None) -> float | None:
        """Mean loss of ``model`` (default: the trained weights) on fixed validation crops,
        diffusion steps and noise, so values are comparable across steps."""
        if self.val_set is None:
            return None
        if model is None:
            self.model.eval()
            model = self.model
        g = torch.Generator().manual_seed(VAL_SEED)
        n = len(self.val_set)
        bs = min(self.config.train.batch_size, n)
        total, count = 0.0, 0
        for b in range(self.config.train.val_batches):
            idx = [(b * bs + k) % n for k in range(bs)]
            audio, cond = self._batch(self.val_set, idx, g, training=False)
            loss = diffusion_loss(self._denoiser(model), audio, self.schedule,
                                  loss_type=self.config.diffusion.loss, cond=cond, generator=g)
            total += float(loss)
            count += 1
        return total / count

    def ema_model(self) -> torch.nn.Module:
        """A copy of the network holding the EMA weights, in eval mode."""
        model = build_model(self.config).to(self.device)
        model.load_state_dict(self.ema.state_dict())
        return model.eval()

    @torch.no_grad()
    def validation_audio(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(recording, ``model``'s audio with the fast schedule) for the first validation clip:
        the vocoder resynthesises it from its mel; a class model generates its label, an
        unconditional one any clip."""
        if self.val_set is None:
            return None
        d = self.config.diffusion
        chain = sampling_schedule(self.schedule, len(d.fast_schedule) or d.num_steps, d.fast_schedule)
        g = torch.Generator().manual_seed(VAL_SEED)
        if isinstance(self.val_set, VocoderDataset):
            mel = torch.from_numpy(self.val_set.mels[0][:, :self.config.data.crop_frames * 4]).unsqueeze(0)
            length = mel.shape[-1] * self.frontend.hop_length
            cond: dict[str, torch.Tensor] = {"mel": mel.to(self.device)}
            ref = torch.from_numpy(self.val_set.audio[0][:length])
        else:
            audio, labels = self.val_set.batch([0], g, random_offset=False)
            length, ref = audio.shape[-1], audio[0]
            cond = {} if labels is None else {"labels": labels.to(self.device)}
        out = sample(self._denoiser(model), (1, length), chain, cond=cond, generator=g, device=self.device)
        return ref, out[0].clamp(-1, 1).cpu()

    # ------------------------------------------------------------------ loop
    def fit(self, max_steps: int | None = None) -> TrainResult:
        """Train until ``max_steps`` (default ``train.max_steps``) or the time budget."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        cfg = self.config.train
        target = max_steps if max_steps is not None else cfg.max_steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.run_dir / CONFIG_FILE, self.config.to_json())
        metrics_path = self.run_dir / METRICS_FILE
        _truncate_metrics(metrics_path, self.step)
        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)
        result = TrainResult(self.run_dir, self.step, self.step)
        log.info("model: %s preset, %d parameters, receptive field %d; device %s; %d threads",
                 self.config.preset, count_parameters(self.model), self.config.model.receptive_field,
                 self.device, torch.get_num_threads())
        started = time.monotonic()
        # under a time budget the step target is usually not reached: count steps without a total
        bar = tqdm(total=None if self.max_minutes is not None else target, initial=self.step, desc="train",
                   unit="step", disable=not self.progress, dynamic_ncols=True)
        window: list[float] = []
        window_start = time.monotonic()
        last_saved = self.step
        try:
            with open(metrics_path, "a") as metrics:
                while self.step < target:
                    if self.max_minutes is not None and time.monotonic() - started > self.max_minutes * 60:
                        log.info("time budget of %.1f minutes reached at step %d", self.max_minutes, self.step)
                        break
                    loss, grad_norm = self.train_step(self.step)
                    if not math.isfinite(loss):
                        raise WavediffError(
                            f"loss became {loss} at step {self.step}; stopping. The last good checkpoint is kept "
                            f"in {str(self.run_dir / 'checkpoints')!r}; try a lower train.learning_rate"
                        )
                    self.step += 1
                    result.losses.append((self.step, loss))
                    window.append(loss)
                    metrics.write(json.dumps({"step": self.step, "loss": loss, "grad_norm": grad_norm}) + "\n")
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == target:
                        elapsed = time.monotonic() - window_start
                        rate = len(window) / elapsed if elapsed > 0 else float("nan")
                        mean = sum(window) / len(window)
                        writer.add_scalar("train/loss", mean, self.step)
                        writer.add_scalar("train/grad_norm", grad_norm, self.step)
                        writer.add_scalar("train/steps_per_sec", rate, self.step)
                        bar.set_postfix(loss=f"{mean:.4f}", steps_s=f"{rate:.2f}")
                        log.debug("step %d loss %.4f grad_norm %.3f %.2f steps/s", self.step, mean, grad_norm, rate)
                        metrics.flush()
                        window, window_start = [], time.monotonic()
                    if self.step % cfg.val_every == 0:
                        self._validate(writer, metrics, result)
                    if self.step % cfg.checkpoint_every == 0:
                        result.checkpoint = self.save()
                        last_saved = self.step
        except KeyboardInterrupt:
            log.warning("interrupted at step %d; saving a checkpoint", self.step)
        finally:
            bar.close()
            if self.step != last_saved or result.checkpoint is None:
                if self.step > 0:
                    result.checkpoint = self.save()
            writer.close()
        result.final_step = self.step
        return result

    def _validate(self, writer: Any, metrics: Any, result: TrainResult) -> None:
        if self.val_set is None:
            return
        ema_model = self.ema_model()
        val = self.validation_loss()
        val_ema = self.validation_loss(ema_model)
        assert val is not None and val_ema is not None
        writer.add_scalar("val/loss", val, self.step)
        writer.add_scalar("val/loss_ema", val_ema, self.step)
        metrics.write(json.dumps({"step": self.step, "val_loss": val, "val_loss_ema": val_ema}) + "\n")
        metrics.flush()
        result.val_losses.append((self.step, val_ema))
        log.info("step %d: validation loss %.4f (EMA %.4f)", self.step, val, val_ema)
        pair = self.validation_audio(ema_model)
        if pair is not None:
            sr = self.config.mel.sample_rate
            writer.add_audio("val/recording", pair[0].unsqueeze(0), self.step, sample_rate=sr)
            writer.add_audio("val/vocoded_fast", pair[1].unsqueeze(0), self.step, sample_rate=sr)


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
    d = config.to_dict()
    d["train"].pop("max_steps")
    return d


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (left by a run that died after its last checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue
    write_text_atomic(path, "".join(k + "\n" for k in kept))
