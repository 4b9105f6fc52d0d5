"""Multi-process training: torchrun with gloo on CPU against one process with the same global batch,
and gradient accumulation against one whole batch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wavediff.checkpoint import list_checkpoints, load_training_state
from wavediff.config import load_config
from wavediff.training.trainer import Trainer


# Two processes (or accumulated micro-batches) sum the same per-item gradients in another order.
# Where the per-item gradients of a weight nearly cancel, Adam's normalised step magnifies that
# float32 rounding: after 5-8 steps the two runs' weight changes were measured to differ by
# 3e-5 of their size (max 4e-5 absolute at lr 2e-3), while a run on other training items
# differs by about 1. The tolerance is on that relative difference.
RELATIVE_TOLERANCE = 1e-3


@pytest.fixture
def micro_config(micro_config):
    """These checks are of the batching semantics, so they run the reference modules: with the fused
    path in fp32, accumulated and whole batches were measured to end 1.5e-3 apart after 5 steps,
    above this tolerance (an open question for the fused path, see docs/training-speed.md)."""
    return micro_config.with_overrides(["train.implementation=reference"])


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_training_state(list_checkpoints(run / "checkpoints")[-1])["model"]


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                        start: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||a - start||: how far apart two trainings ended, against how far they went."""
    apart = sum(float(((a[k] - b[k]).double() ** 2).sum()) for k in a) ** 0.5
    moved = sum(float(((a[k] - start[k]).double() ** 2).sum()) for k in a) ** 0.5
    assert moved > 0
    return apart / moved


def train_cli(args: list[str], nproc: int = 1, cwd: Path | None = None) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] \
        if nproc > 1 else [sys.executable]
    cmd = launcher + ["-m", "wavediff", "train", "--device", "cpu", "--no-progress", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def config_file(tmp_path, micro_config):
    path = tmp_path / "micro.json"
    path.write_text(micro_config.to_json())
    return path


def losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradient_accumulation_gives_the_same_step_as_one_batch(tmp_path, audio_dir, micro_config):
    whole = Trainer(micro_config, audio_dir, tmp_path / "whole", progress=False)
    start = {k: v.clone() for k, v in whole.model.state_dict().items()}
    whole.fit(5)
    accumulated = micro_config.with_overrides(["train.micro_batch_size=1"])
    trainer = Trainer(accumulated, audio_dir, tmp_path / "acc", progress=False)
    assert (trainer.accumulation, trainer.micro_batch) == (4, 1)
    trainer.fit(5)
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "acc")
    assert relative_difference(a, b, start) < RELATIVE_TOLERANCE
    # the control: the same start on other training crops ends far away
    other = micro_config.with_overrides(["data.crop_frames=10"])
    Trainer(other, audio_dir, tmp_path / "other", progress=False).fit(5)
    assert relative_difference(a, final_weights(tmp_path / "other"), start) > 0.1


@pytest.mark.parametrize("micro", [0, 1], ids=["no-accumulation", "accumulation"])
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path, audio_dir, config_file, micro,
                                                                         micro_config):
    start = Trainer(micro_config, audio_dir, tmp_path / "init", progress=False).model.state_dict()
    steps = ["--max-steps", "6", "--set", f"train.micro_batch_size={micro}"]
    train_cli(["--config", str(config_file), "--data", str(audio_dir), "--out", str(tmp_path / "one"), *steps])
    done = train_cli(["--config", str(config_file), "--data", str(audio_dir), "--out", str(tmp_path / "two"),
                      *steps], nproc=2)
    assert "2 process(es) on cpu" in done.stderr
    assert done.stderr.count("saved checkpoint") == 2          # rank 0 alone writes (steps 4 and 6)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert relative_difference(a, b, start) < RELATIVE_TOLERANCE
    la, lb = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(la) == len(lb) == 6
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-5    # the logged loss is the global batch's mean
    state = load_training_state(list_checkpoints(tmp_path / "two" / "checkpoints")[-1])
    assert state["world_size"] == 2 and state["rng"]["torch"].shape[0] == 2   # every rank's RNG state
    # the 2-process run resumes on one process (data order and draws do not depend on the process count)
    train_cli(["--config", str(config_file), "--data", str(audio_dir), "--out", str(tmp_path / "two"),
               "--max-steps", "8", "--resume", "--set", f"train.micro_batch_size={micro}"])
    train_cli(["--config", str(config_file), "--data", str(audio_dir), "--out", str(tmp_path / "one"),
               "--max-steps", "8", "--resume", "--set", f"train.micro_batch_size={micro}"])
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert relative_difference(a, b, start) < RELATIVE_TOLERANCE


def test_the_two_node_command_trains_like_one_process(tmp_path, audio_dir, config_file, micro_config):
    """The two-machine torchrun command of docs/distributed.md, with both 'machines' on this one."""
    start = Trainer(micro_config, audio_dir, tmp_path / "init", progress=False).model.state_dict()
    train_cli(["--config", str(config_file), "--data", str(audio_dir), "--out", str(tmp_path / "one"),
               "--max-steps", "4"])
    port = _free_port()
    nodes = []
    for node in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
               "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "-m", "wavediff", "train", "--config", str(config_file), "--data", str(audio_dir),
               "--out", str(tmp_path / "two"), "--max-steps", "4", "--device", "cpu", "--no-progress"]
        nodes.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      stdin=subprocess.DEVNULL))
    outputs = [p.communicate(timeout=300)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert sum("2 process(es) on cpu" in o for o in outputs) == 1    # rank 0 (on one of the nodes) logs
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert relative_difference(a, b, start) < RELATIVE_TOLERANCE


def test_a_gan_trains_on_two_processes_as_on_one(tmp_path, audio_dir):
    """HiFi-GAN's two phases (each its own forward through the DDP wrapper, which looks for the
    parameters a phase leaves unused) against one process with the same global batch."""
    config = load_config("hifigan-v3", ["hifigan.initial_channels=32", "hifigan.discriminator_width=0.125",
                                        "hifigan.periods=[2,3]", "hifigan.scales=1", "data.crop_frames=16",
                                        "train.batch_size=4", "data.val_count=2", "train.val_every=4",
                                        "train.checkpoint_every=4", "train.precision=fp32"])
    path = tmp_path / "gan.json"
    path.write_text(config.to_json())
    start = Trainer(config, audio_dir, tmp_path / "init", progress=False).model.state_dict()
    train_cli(["--config", str(path), "--data", str(audio_dir), "--out", str(tmp_path / "one"), "--max-steps", "6"])
    train_cli(["--config", str(path), "--data", str(audio_dir), "--out", str(tmp_path / "two"), "--max-steps", "6"],
              nproc=2)
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert relative_difference(a, b, start) < RELATIVE_TOLERANCE
    rows = [[json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("one", "two")]
    pairs = [(r["loss_discriminator"], s["loss_discriminator"]) for r, s in zip(*rows) if "loss" in r]
    assert len(pairs) == 6 and max(abs(x - y) for x, y in pairs) < 1e-5
