"""wavediff.training.run_log: metrics.jsonl written line by line, cut back to a resumed step, and
nothing written by the processes that do not log."""
from __future__ import annotations

import json

import pytest

from wavediff.training.run_log import METRICS_FILE, RunLog, truncate_metrics


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_truncate_keeps_the_lines_up_to_the_step_and_drops_a_cut_line(tmp_path):
    path = tmp_path / METRICS_FILE
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    lines.insert(3, json.dumps({"step": 3, "val_loss": 0.5}))
    path.write_text("\n".join(lines) + '\n{"step": 6, "lo')
    truncate_metrics(path, 3)
    assert [(r["step"], "val_loss" in r) for r in _rows(path)] == [(1, False), (2, False), (3, False), (3, True)]
    truncate_metrics(tmp_path / "absent.jsonl", 3)            # no file: nothing to do
    assert not (tmp_path / "absent.jsonl").exists()


def test_steps_and_validations_are_lines_with_each_phase_loss(tmp_path):
    log = RunLog(tmp_path, 0, enabled=True, progress=False, total=3, log_every=2)
    log.step(1, 0.5, 2.0, {"generator": 0.25, "critic": 0.75}, last=False)
    log.step(2, 0.4, 1.0, {"generator": 0.2, "critic": 0.6}, last=False)
    log.validation(2, 0.3, 0.35, "mel_error")
    log.step(3, 0.2, 0.5, {"generator": 0.1, "critic": 0.3}, last=True)
    log.close()
    rows = _rows(tmp_path / METRICS_FILE)
    assert [r["step"] for r in rows] == [1, 2, 2, 3]
    assert rows[0]["loss"] == 0.5 and rows[0]["grad_norm"] == 2.0
    assert (rows[0]["loss_generator"], rows[0]["loss_critic"]) == (0.25, 0.75)
    assert rows[2] == {"step": 2, "val_loss": 0.3, "val_loss_ema": 0.35}
    assert all(r["seconds"] >= 0 and r["cpu_seconds"] >= 0 for r in rows if "loss" in r)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_generator", "train/loss_critic", "val/mel_error", "val/mel_error_ema"} <= tags
    critic = {e.step: e.value for e in events.Scalars("train/loss_critic")}
    assert critic == pytest.approx({2: 0.675, 3: 0.3})           # each window's mean


def test_a_resumed_log_continues_after_the_checkpoint_step(tmp_path):
    first = RunLog(tmp_path, 0, enabled=True, progress=False, total=None, log_every=1)
    for s in range(1, 6):
        first.step(s, 1.0, 1.0, {}, last=s == 5)
    first.close()
    again = RunLog(tmp_path, 3, enabled=True, progress=False, total=None, log_every=1)   # resumed at step 3
    again.step(4, 0.5, 1.0, {}, last=True)
    again.close()
    assert [(r["step"], r["loss"]) for r in _rows(tmp_path / METRICS_FILE)] == [(1, 1.0), (2, 1.0), (3, 1.0),
                                                                               (4, 0.5)]


def test_a_process_that_does_not_log_writes_nothing(tmp_path):
    log = RunLog(tmp_path, 0, enabled=False, progress=False, total=2, log_every=1)
    log.step(1, 0.5, 1.0, {}, last=False)
    log.validation(1, 0.5, 0.5)
    log.flush()
    log.close()
    assert list(tmp_path.iterdir()) == []
