"""Model families: the trainer, checkpoints, the vocoder pipeline and evaluation work for a family
that is not DiffWave (the two-phase toy family of ``toy_family.py``)."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.utils.data import default_collate

from wavediff.checkpoint import load_config_file, load_training_state, resolve_checkpoint
from wavediff.evaluation.report import markdown_report
from wavediff.evaluation.runner import evaluate
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

from toy_family import critic_loss, generator_loss


def test_an_optimiser_step_runs_each_phase_with_its_own_optimiser(toy, toy_config, audio_dir, tmp_path):
    """One trainer step against the phases written out by hand: generator, then critic, each
    zeroed, differentiated, clipped and stepped by its own Adam."""
    trainer = Trainer(toy_config, audio_dir, tmp_path / "run", progress=False)
    assert sorted(trainer.optimizers) == ["critic", "generator"]
    batch = default_collate([trainer.train_set[(i, 100 + i)] for i in range(4)])
    model = copy.deepcopy(trainer.model)
    lr, clip = toy_config.train.learning_rate, toy_config.train.grad_clip_norm
    for params, loss_fn in [(list(model.generator.parameters()), generator_loss),
                            (list(model.critic.parameters()), critic_loss)]:
        opt = torch.optim.Adam(params, lr=lr)
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch["mel"], batch["audio"]).backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
    out = trainer.train_step([batch])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(trainer.model.state_dict()[name], value, msg=name)
    assert set(out.phase_losses) == {"critic"} and out.loss > 0


def test_a_run_of_another_family_checkpoints_resumes_and_vocodes(toy, toy_config, audio_dir, tmp_path):
    run = tmp_path / "run"
    Trainer(toy_config, audio_dir, run, progress=False).fit(max_steps=2)
    ckpt = resolve_checkpoint(run)
    assert load_config_file(ckpt).family == "toy-gan"
    assert sorted(load_training_state(ckpt)["optimizers"]) == ["critic", "generator"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "loss_critic"} <= set(rows[-1])
    resumed = Trainer(toy_config, audio_dir, run, resume=True, progress=False)
    assert resumed.step == 2
    resumed.fit(max_steps=4)
    assert resolve_checkpoint(run).name == "step_00000004"

    vocoder = Vocoder.from_checkpoint(run, device="cpu")
    mel = torch.rand(toy_config.mel.n_mels, 7)
    out = vocoder.vocode(mel, steps=6)
    assert out.shape == (7 * toy_config.mel.hop_length,)
    with torch.no_grad():
        expected = vocoder.model(mel.unsqueeze(0))[0].clamp(-1, 1)
    torch.testing.assert_close(out, expected)


@pytest.mark.filterwarnings("ignore:Not enough STFT frames")
def test_evaluate_compares_families_side_by_side(toy, toy_config, micro_config, audio_dir, tmp_path):
    Trainer(toy_config, audio_dir, tmp_path / "toy", progress=False).fit(max_steps=1)
    Trainer(micro_config, audio_dir, tmp_path / "dw", progress=False).fit(max_steps=1)
    report = evaluate([str(tmp_path / "dw"), str(tmp_path / "toy")], audio_dir, tmp_path / "eval", steps=[2],
                      gl_iters=[], limit=2, device="cpu")
    families = {c["name"]: c["family"] for c in report.meta["checkpoints"]}
    assert families == {"dw": "diffwave", "toy": "toy-gan"}
    assert [s.spec.name for s in report.systems] == ["dw, 2 steps", "toy, 2 steps"]
    assert all(s.metrics["log_mel_l1"].mean is not None for s in report.systems)
    text = markdown_report(report)
    assert "(diffwave, tiny preset" in text and "(toy-gan, tiny preset" in text
