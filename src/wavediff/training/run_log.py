"""What a training run writes as it goes, on the main process only: ``metrics.jsonl`` (a line
per step and per validation), TensorBoard scalars and audio, and the progress bar."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from wavediff.checkpoint import write_text_atomic

METRICS_FILE = "metrics.jsonl"


class RunLog:
    """The run's logs from ``step`` on (lines past it, left by a run that died after its last
    checkpoint, are dropped). Every method is a no-op when ``enabled`` is false (other ranks)."""

    def __init__(self, run_dir: Path, step: int, *, enabled: bool, progress: bool, total: int | None,
                 log_every: int) -> None:
        from tqdm import tqdm

        self.enabled = enabled
        self.log_every = log_every
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self._window: list[float] = []
        self._phase_window: dict[str, list[float]] = {}
        self._window_start = self.started
        self.writer: Any = None
        self._metrics: Any = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            truncate_metrics(run_dir / METRICS_FILE, step)
            self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1 if step else None)
            self._metrics = open(run_dir / METRICS_FILE, "a")
        self.bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not (progress and enabled),
                        dynamic_ncols=True)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the run (this call of ``fit``) started."""
        return time.monotonic() - self.started

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of this process (all its threads) since the run (this call of ``fit``) started."""
        return time.process_time() - self.cpu_started

    def step(self, step: int, loss: float, grad_norm: float, phase_losses: dict[str, float], last: bool) -> None:
        """A step's line in ``metrics.jsonl``; every ``log_every`` steps (and at ``last``) the
        window's mean loss, the gradient norm and the step rate in TensorBoard and the bar."""
        self.bar.update(1)
        self._window.append(loss)
        for name, value in phase_losses.items():
            self._phase_window.setdefault(name, []).append(value)
        if not self.enabled:
            return
        row = {"step": step, "loss": loss, "grad_norm": grad_norm,
               **{f"loss_{name}": value for name, value in phase_losses.items()}, "seconds": round(self.seconds, 4),
               "cpu_seconds": round(self.cpu_seconds, 3)}
        self._metrics.write(json.dumps(row) + "\n")
        if step % self.log_every == 0 or last:
            elapsed = time.monotonic() - self._window_start
            rate = len(self._window) / elapsed if elapsed > 0 else float("nan")
            mean = sum(self._window) / len(self._window)
            self.writer.add_scalar("train/loss", mean, step)
            for name, values in self._phase_window.items():
                self.writer.add_scalar(f"train/loss_{name}", sum(values) / len(values), step)
            self.writer.add_scalar("train/grad_norm", grad_norm, step)
            self.writer.add_scalar("train/steps_per_sec", rate, step)
            self.bar.set_postfix(loss=f"{mean:.4f}", steps_s=f"{rate:.2f}")
            self._metrics.flush()
            self._window, self._phase_window, self._window_start = [], {}, time.monotonic()

    def validation(self, step: int, loss: float, loss_ema: float, name: str = "loss") -> None:
        """The validation losses; TensorBoard shows them as ``val/<name>`` and ``val/<name>_ema``."""
        if not self.enabled:
            return
        self.writer.add_scalar(f"val/{name}", loss, step)
        self.writer.add_scalar(f"val/{name}_ema", loss_ema, step)
        self._metrics.write(json.dumps({"step": step, "val_loss": loss, "val_loss_ema": loss_ema}) + "\n")
        self._metrics.flush()

    def audio(self, tag: str, audio: torch.Tensor, step: int, sample_rate: int) -> None:
        """``(L,)`` audio in TensorBoard."""
        if self.enabled:
            self.writer.add_audio(tag, audio.unsqueeze(0), step, sample_rate=sample_rate)

    def flush(self) -> None:
        """Every step so far on disk (before a checkpoint holds it)."""
        if self._metrics is not None:
            self._metrics.flush()

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self._metrics is not None:
            self._metrics.close()


def truncate_metrics(path: Path, step: int) -> None:
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
