from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wavediff.errors import WavediffError
from wavediff.pipelines import Vocoder
from wavediff.checkpoint import list_checkpoints, load_training_state
from wavediff.training.trainer import Trainer


def losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_a_tiny_training_run_lowers_the_loss(tmp_path, audio_dir, micro_config):
    result = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False).fit(40)
    first = sum(l for _, l in result.losses[:8]) / 8
    last = sum(l for _, l in result.losses[-8:]) / 8
    # a zero-initialised output predicts eps = 0, so the L2 loss starts at E[eps^2] = 1
    assert micro_config.diffusion.loss == "l2"
    assert first == pytest.approx(1.0, abs=0.1)
    assert last < 0.85 * first
    assert result.val_losses and all(torch.isfinite(torch.tensor(v)) for _, v in result.val_losses)
    assert (tmp_path / "run" / "tb").is_dir() and list((tmp_path / "run" / "tb").iterdir())


@pytest.mark.parametrize("setup", ["fused-bf16", "fused-fp32", "reference-fp32", "reference-bf16"])
def test_resume_continues_the_same_loss_curve(tmp_path, audio_dir, micro_config, setup):
    implementation, precision = setup.split("-")
    micro_config = micro_config.with_overrides([f"train.implementation={implementation}",
                                                f"train.precision={precision}"])
    straight = tmp_path / "straight"
    Trainer(micro_config, audio_dir, straight, progress=False).fit(8)
    split = tmp_path / "split"
    Trainer(micro_config, audio_dir, split, progress=False).fit(3)   # 2 steps an epoch: stops mid-epoch
    with pytest.raises(WavediffError, match="--resume"):
        Trainer(micro_config, audio_dir, split, progress=False)
    Trainer(micro_config, audio_dir, split, resume=True, progress=False).fit(8)
    a, b = losses(straight), losses(split)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert [a[k] for k in a] == [b[k] for k in a]  # bit-identical
    sa = load_training_state(list_checkpoints(straight / "checkpoints")[-1])
    sb = load_training_state(list_checkpoints(split / "checkpoints")[-1])
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    for k in sa["ema"]:
        assert torch.equal(sa["ema"][k], sb["ema"][k]), k


def test_checkpoints_are_kept_last_n_and_complete(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "run", progress=False).fit(13)
    names = [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert names == ["step_00000012", "step_00000013"]  # keep_last=2
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000013"
    for name in names:
        files = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / name).iterdir())
        assert files == ["config.json", "model.safetensors", "training_state.pt"]


def test_checkpoint_round_trip_gives_bit_identical_audio(tmp_path, audio_dir, micro_config):
    trainer = Trainer(micro_config, audio_dir, tmp_path / "run", progress=False)
    trainer.fit(6)
    mel = torch.from_numpy(np.array(trainer.train_set.mel(0)[:, :10]))
    one = Vocoder.from_checkpoint(tmp_path / "run", device="cpu")
    two = Vocoder.from_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000006", device="cpu")
    a = one.vocode(mel, 6, generator=torch.Generator().manual_seed(5))
    b = two.vocode(mel, 6, generator=torch.Generator().manual_seed(5))
    assert a.shape == (10 * 256,) and torch.equal(a, b)
    # the saved weights are the trainer's EMA weights
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(one.model.state_dict()[k], v), k


def test_bf16_autocast_trains_on_cpu(tmp_path, audio_dir, micro_config):
    cfg = micro_config.with_overrides(["train.precision=bf16"])
    result = Trainer(cfg, audio_dir, tmp_path / "run", progress=False, device="cpu").fit(3)
    assert len(result.losses) == 3 and all(0 < l < 2 for _, l in result.losses)


def test_fp16_needs_cuda(tmp_path, audio_dir, micro_config):
    cfg = micro_config.with_overrides(["train.precision=fp16"])
    with pytest.raises(WavediffError, match="fp16"):
        Trainer(cfg, audio_dir, tmp_path / "run", progress=False, device="cpu")


def test_init_from_starts_a_new_run_from_other_weights(tmp_path, audio_dir, micro_config):
    from wavediff.checkpoint import load_weights, resolve_checkpoint
    from wavediff.training.trainer import Trainer

    first = Trainer(micro_config, audio_dir, tmp_path / "a", device="cpu", progress=False, workers=0)
    first.fit(max_steps=2)
    source = load_weights(resolve_checkpoint(tmp_path / "a"))
    warm = Trainer(micro_config.with_overrides(["train.seed=5"]), audio_dir, tmp_path / "b", device="cpu",
                   progress=False, workers=0, init_from=tmp_path / "a")
    assert warm.step == 0
    for name, value in warm.model.state_dict().items():
        torch.testing.assert_close(value, source[name])
        torch.testing.assert_close(warm.ema.shadow[name], source[name].float())
    cold = Trainer(micro_config.with_overrides(["train.seed=5"]), audio_dir, tmp_path / "c", device="cpu",
                   progress=False, workers=0)
    assert any((cold.model.state_dict()[k] - v).abs().max() > 0 for k, v in source.items())
    wider = micro_config.with_overrides(["model.residual_channels=12"])
    with pytest.raises(WavediffError, match="init-from"):
        Trainer(wider, audio_dir, tmp_path / "d", device="cpu", progress=False, workers=0, init_from=tmp_path / "a")
