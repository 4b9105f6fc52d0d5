"""wavediff.training.trainer: a tiny run lowers the loss, resumes on the same curve, keeps its last
checkpoints, warm-starts from other weights, trains class-conditional and unconditional models and
measures PriorGrad's energy scale."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from wavediff.audio.mel import MelFrontend
from wavediff.checkpoint import list_checkpoints, load_training_state
from wavediff.errors import WavediffError
from wavediff.pipelines import Synthesizer
from wavediff.training.trainer import Trainer

from helpers import CLIP, CLIP_SR, clip_config, labelled_tone


def losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


# ---------------------------------------------------------------- training
def test_class_training_takes_the_data_labels_and_saves_them(class_run):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    assert gen.class_names == ("high", "low", "mid")     # alphabetical: not digit words or integers
    assert gen.clip_samples == CLIP and gen.sample_rate == CLIP_SR
    assert gen.supports_guidance    # the -cpu class preset trains with label dropout


def test_unconditional_training_runs_without_labels(digits, tmp_path):
    trainer = Trainer(clip_config("none"), digits, tmp_path / "u", progress=False)
    assert trainer.train_set.labels is None and trainer.model.label_embedding is None
    result = trainer.fit(max_steps=2)
    assert all(np.isfinite(loss) for _, loss in result.losses)
    gen = Synthesizer.from_checkpoint(tmp_path / "u", device="cpu")
    assert gen.class_names == () and gen.generate(2, seed=0).shape == (2, CLIP)
    with pytest.raises(WavediffError, match="unconditional; it takes no labels"):
        gen.generate(2, labels="low")


def test_class_training_refuses_unlabelled_clips(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(6):
        sf.write(folder / f"clip{i}.wav", labelled_tone(400, 0.2, i), CLIP_SR)
    with pytest.raises(WavediffError, match="have no label"):
        Trainer(clip_config("class"), folder, tmp_path / "r", progress=False)


def test_training_measures_and_records_the_energy_scale(tmp_path, audio_dir, micro_config):
    from wavediff.data.datasets import VocoderDataset
    from wavediff.training.trainer import Trainer

    cfg = micro_config.with_overrides(["diffusion.prior=priorgrad"])
    trainer = Trainer(cfg, audio_dir, tmp_path / "run", device="cpu", progress=False, workers=0)
    scale = trainer.config.diffusion.prior_energy_max
    assert isinstance(trainer.train_set, VocoderDataset)
    mels = [torch.from_numpy(trainer.train_set.mel(i, mmap=False)) for i in range(len(trainer.train_set))]
    want = max(float(torch.sqrt(MelFrontend(cfg.mel).decompress(m).sum(0)).max()) for m in mels)
    assert scale == pytest.approx(want, rel=1e-5)
    result = trainer.fit(max_steps=2)
    assert result.final_step == 2 and all(math.isfinite(v) for _, v in result.losses)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["diffusion"]["prior"] == "priorgrad"
    assert saved["diffusion"]["prior_energy_max"] == pytest.approx(scale)


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


def test_the_learning_rate_decays_by_epoch_and_resumes_on_the_same_schedule(tmp_path, audio_dir, micro_config):
    cfg = micro_config.with_overrides(["train.lr_decay=0.5"])      # 2 steps an epoch
    base = cfg.train.learning_rate
    trainer = Trainer(cfg, audio_dir, tmp_path / "run", progress=False)
    trainer.fit(3)                                                  # step 3 is the first of epoch 1
    assert [g["lr"] for g in trainer.optimizers["denoiser"].param_groups] == [base * 0.5]
    resumed = Trainer(cfg, audio_dir, tmp_path / "run", resume=True, progress=False)
    resumed.fit(5)                                                  # step 5 is the first of epoch 2
    assert [g["lr"] for g in resumed.optimizers["denoiser"].param_groups] == [base * 0.25]


def test_a_cpu_budget_stops_the_run_with_a_checkpoint(tmp_path, audio_dir, micro_config):
    result = Trainer(micro_config, audio_dir, tmp_path / "run", max_cpu_hours=1e-9, progress=False).fit(50)
    assert result.final_step == 1 and result.stopped_by == "time budget"
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_00000001"]


def test_checkpoints_are_kept_last_n_and_complete(tmp_path, audio_dir, micro_config):
    Trainer(micro_config, audio_dir, tmp_path / "run", progress=False).fit(13)
    names = [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert names == ["step_00000012", "step_00000013"]  # keep_last=2
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000013"
    for name in names:
        files = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / name).iterdir())
        assert files == ["config.json", "model.safetensors", "training_state.pt"]


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
