"""Runs that are killed, stopped, or go numerically wrong lose no work and resume exactly."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from wavediff.checkpoint import (STATE_FILE, WEIGHTS_FILE, list_checkpoints, load_training_state, resolve_checkpoint,
    save_checkpoint)
from wavediff.errors import WavediffError
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import NonFiniteLoss, Trainer


@pytest.fixture
def config_file(tmp_path, micro_config):
    path = tmp_path / "micro.json"
    # 9 training clips in batches of 4: 2 steps an epoch; checkpoints every 3 steps land mid-epoch
    path.write_text(micro_config.with_overrides(["train.keep_last=3", "train.checkpoint_every=3"]).to_json())
    return path


def train_args(config_file: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "wavediff", "train", "--config", str(config_file), "--data", str(data), "--out", str(out),
            "--device", "cpu", "--no-progress", *extra]


def run(args: list[str]) -> None:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, *args], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    wait_until(path.exists, proc, str(path), timeout)


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the training ended (status {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.02)


def weights_and_losses(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[int, float]]:
    state = load_training_state(list_checkpoints(run_dir / "checkpoints")[-1])
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return state["model"], state["ema"], {r["step"]: r["loss"] for r in rows if "loss" in r}


def assert_same_training(a: Path, b: Path) -> None:
    model_a, ema_a, loss_a = weights_and_losses(a)
    model_b, ema_b, loss_b = weights_and_losses(b)
    assert loss_a == loss_b                                   # every step's loss, bit for bit
    for k in model_a:
        assert torch.equal(model_a[k], model_b[k]), k
        assert torch.equal(ema_a[k], ema_b[k]), k


# A driver that stalls inside torch.save of the step-9 training state, after writing part of it,
# so that the test can SIGKILL it in the middle of writing a checkpoint.
STALLING_DRIVER = """
import os, sys, time, torch
real_save = torch.save
def stalling_save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and obj.get("step") == 9:
        with open(f, "wb") as fh:
            fh.write(b"PK\\x03\\x04 half of a training state")
            fh.flush()
        open(os.environ["WAVEDIFF_TEST_MARKER"], "w").close()
        time.sleep(600)
    return real_save(obj, f, *args, **kwargs)
torch.save = stalling_save
from wavediff.cli import main
sys.exit(main(sys.argv[1:]))
"""


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(tmp_path, audio_dir, config_file):
    run(train_args(config_file, audio_dir, tmp_path / "straight", "--max-steps", "40"))
    killed = tmp_path / "killed"
    proc = start(train_args(config_file, audio_dir, killed, "--max-steps", "100000"), tmp_path / "killed.log")
    wait_for(killed / "checkpoints" / "step_00000009", proc)
    # the folder appears (renamed into place) before `latest` names it: wait for both, or a kill
    # that lands in between (seen under load) leaves step 6 as the run's latest, correctly
    wait_until(lambda: int(resolve_checkpoint(killed).name.split("_")[1]) >= 9, proc, "latest >= step 9")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    reached = int(resolve_checkpoint(killed).name.split("_")[1])
    assert 9 <= reached < 40
    run(train_args(config_file, audio_dir, killed, "--max-steps", "40", "--resume"))
    assert_same_training(tmp_path / "straight", killed)


def test_a_kill_while_a_checkpoint_is_written_leaves_no_half_checkpoint(tmp_path, audio_dir, config_file):
    run(train_args(config_file, audio_dir, tmp_path / "straight", "--max-steps", "12"))
    driver = tmp_path / "driver.py"
    driver.write_text(STALLING_DRIVER)
    marker = tmp_path / "writing"
    killed = tmp_path / "killed"
    proc = start([str(driver), *train_args(config_file, audio_dir, killed, "--max-steps", "100")[2:]],
                 tmp_path / "killed.log", env={"WAVEDIFF_TEST_MARKER": str(marker)})
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    root = killed / "checkpoints"
    half = list(root.glob(".step_00000009.*.tmp"))
    assert half and (half[0] / STATE_FILE).is_file()          # the kill did land mid-write
    assert [p.name for p in list_checkpoints(root)] == ["step_00000003", "step_00000006"]
    assert resolve_checkpoint(killed).name == "step_00000006"
    assert (root / "latest").read_text().strip() == "step_00000006"
    Vocoder.from_checkpoint(killed, device="cpu")              # what is there loads
    run(train_args(config_file, audio_dir, killed, "--max-steps", "12", "--resume"))
    assert not list(root.glob(".*.tmp"))                      # the half-written one was cleaned up
    assert_same_training(tmp_path / "straight", killed)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, audio_dir, config_file):
    out = tmp_path / "run"
    log = tmp_path / "run.log"
    proc = start(train_args(config_file, audio_dir, out, "--max-steps", "100000"), log)
    wait_for(out / "checkpoints" / "step_00000003", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = log.read_text()
    assert "SIGTERM received" in text and "stopped by SIGTERM" in text and "Traceback" not in text
    _, _, losses = weights_and_losses(out)
    last = max(losses)
    assert resolve_checkpoint(out).name == f"step_{last:08d}"   # saved at the step it stopped at
    run(train_args(config_file, audio_dir, out, "--max-steps", str(last + 2), "--resume"))
    assert resolve_checkpoint(out).name == f"step_{last + 2:08d}"


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, audio_dir, micro_config):
    trainer = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False)
    real_loss = trainer.objective.loss

    def loss_going_nan(model, batch, phase, training):
        loss = real_loss(model, batch, phase, training)
        return loss * float("nan") if training and trainer.step == 5 else loss

    trainer.objective.loss = loss_going_nan
    before: dict[str, torch.Tensor] = {}
    real_step = trainer.train_step

    def remember(*args, **kwargs):
        before.clear()
        before.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return real_step(*args, **kwargs)

    trainer.train_step = remember
    with pytest.raises(NonFiniteLoss, match=r"loss became nan at step 6.*last good checkpoint is .*step_00000004"):
        trainer.fit(20)
    assert trainer.step == 5
    for k, v in trainer.model.state_dict().items():          # the bad step was not applied
        assert torch.equal(v, before[k]), k
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_00000004"]
    state = load_training_state(resolve_checkpoint(tmp_path / "run"))
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_training_state_is_never_unpickled(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "run", progress=False).fit(4)
    ckpt = resolve_checkpoint(tmp_path / "run")
    proof = tmp_path / "code_ran"
    with open(ckpt / STATE_FILE, "wb") as fh:
        pickle.dump({"model": _Payload(str(proof))}, fh)
    with pytest.raises(WavediffError, match="damaged: its SHA-256 differs"):
        load_training_state(ckpt)                               # the checksum notices first
    (ckpt / WEIGHTS_FILE).unlink()                              # without one, weights_only refuses it
    with pytest.raises(WavediffError, match="never unpickles"):
        load_training_state(ckpt)
    assert not proof.exists()
    # a well-formed state (checksum and all) whose weights do not fit the config is refused by name
    trainer = Trainer(micro_config, audio_dir, tmp_path / "other", progress=False)
    trainer.fit(2)
    save_checkpoint(tmp_path / "other" / "checkpoints", 3, trainer.config, trainer.ema.state_dict(),
                    {"model": {}, "optimizer": {}, "ema": {}, "ema_updates": 0, "step": 3}, keep_last=3)
    with pytest.raises(WavediffError, match="weights lack 'input_projection.weight'"):
        Trainer(micro_config, audio_dir, tmp_path / "other", resume=True, progress=False)


def test_a_checkpoint_whose_config_and_weights_disagree_is_refused(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "run", progress=False).fit(1)
    ckpt = resolve_checkpoint(tmp_path / "run")
    config = json.loads((ckpt / "config.json").read_text())
    config["model"]["residual_channels"] = 16
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(WavediffError, match=r"weight 'input_projection.weight' has shape \(8, 1, 1\), the config's "
                                            r"model expects \(16, 1, 1\)"):
        Vocoder.from_checkpoint(ckpt, device="cpu")
    config["model"]["residual_channels"] = 8
    config["model"]["residual_layers"] = 3
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(WavediffError, match=r"weights hold 'layers.3.\S+' that the config's model does not"):
        Vocoder.from_checkpoint(ckpt, device="cpu")
