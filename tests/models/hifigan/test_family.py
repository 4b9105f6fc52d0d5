"""wavediff.models.hifigan.family, .gan, .objective and .vocoding: the presets build the
published generators; the config's hop is checked; the discriminator phase trains only the
discriminators and the generator phase's loss is its three terms with the paper's weights; a
tiny run through the trainer lowers the mel error; its checkpoint holds both optimisers and
vocodes through the Vocoder as the generator does."""
from __future__ import annotations

import json

import pytest
import torch

from wavediff.checkpoint import list_checkpoints, load_training_state
from wavediff.config import load_config
from wavediff.errors import WavediffError
from wavediff.models.family import family_of
from wavediff.models.hifigan import count_parameters, fold_weight_norm
from wavediff.models.hifigan.losses import (discriminator_loss, feature_matching_loss, generator_adversarial_loss,
                                            mel_loss)
from wavediff.models.hifigan.objective import HiFiGANObjective
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

TINY = ["hifigan.initial_channels=32", "hifigan.discriminator_width=0.125", "hifigan.periods=[2,3]",
        "hifigan.scales=1", "data.crop_frames=16", "train.batch_size=4", "data.val_count=2",
        "train.learning_rate=2e-3", "train.val_every=1000", "train.checkpoint_every=10", "train.log_every=5",
        "train.precision=fp32"]


@pytest.mark.parametrize("preset, generator_parameters", [("hifigan-v1", 13_926_017), ("hifigan-v2", 925_985),
                                                          ("hifigan-v3", 1_462_273)])
def test_presets_build_the_published_generators(preset, generator_parameters):
    config = load_config(preset)
    model = family_of(config).build_model(config)
    assert family_of(config).describe(model, config)["generator_parameters"] == generator_parameters
    assert count_parameters(fold_weight_norm(model.generator)) == generator_parameters
    assert config.mel.hop_length == config.hifigan.hop_length == 256 and config.data.crop_frames * 256 == 8192
    assert (config.train.batch_size, config.train.learning_rate, config.train.lr_decay, config.train.ema_decay) == (
        16, 2e-4, 0.999, 0.0)
    assert config.data.normalization_peak == 0.95                     # the authors' normalize(audio) * 0.95


def test_the_hop_must_be_the_product_of_the_rates():
    with pytest.raises(WavediffError, match=r"upsample 256 times, but mel.hop_length=160"):
        family_of(load_config("hifigan-v1", ["mel.hop_length=160", "hifigan.upsample_rates=[8,8,2,2]"]))
    derived = load_config("hifigan-v1", ["mel.hop_length=160"])          # rates left to the hop: derived
    family_of(derived)
    assert family_of(derived).build_model(derived).generator(torch.zeros(1, 80, 3)).shape == (1, 480)
    assert load_config("hifigan-audioldm").hifigan.hop_length == 160


def _batch(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = config.data.crop_frames
    return {"audio": 0.3 * torch.randn(2, frames * config.mel.hop_length, generator=g),
            "mel": torch.randn(2, config.mel.n_mels, frames, generator=g)}


def test_the_phases_train_their_own_networks_with_the_papers_terms():
    config = load_config("hifigan-v3", TINY)
    torch.manual_seed(0)
    model = family_of(config).build_model(config)
    objective = HiFiGANObjective(config, torch.device("cpu"))
    phases = objective.phases(model)
    assert [p.name for p in phases] == ["discriminator", "generator"] and objective.main_phase == "generator"
    optimizer = phases[0].optimizer(phases[0].parameters, 2e-4)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.8, 0.99)
    batch = _batch(config)
    objective.loss(model, batch, "discriminator", training=True).backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.discriminators.parameters())
    # the generator's loss, term by term with the paper's weights 1, 2 and 45
    torch.manual_seed(1)
    got = objective.loss(model, batch, "generator", training=True).detach()
    with torch.no_grad():
        fake = model.generator(batch["mel"])
        fake_logits, fake_features = model.discriminators(fake)
        _, real_features = model.discriminators(batch["audio"])
        want = (generator_adversarial_loss(fake_logits) + 2 * feature_matching_loss(real_features, fake_features)
                + 45 * mel_loss(objective.log_mel(batch["audio"]), objective.log_mel(fake)))
        assert float(got) == pytest.approx(float(want), rel=1e-5)
        real_logits, _ = model.discriminators(batch["audio"])
        assert float(objective.loss(model, batch, "discriminator", training=True)) == pytest.approx(
            float(discriminator_loss(real_logits, fake_logits)), rel=1e-5)
        # validation: the mel error alone, on a loss mel that reaches Nyquist
        assert objective.loss_frontend.config.f_max == config.mel.sample_rate / 2
        assert float(objective.loss(model, batch, "generator", training=False)) == pytest.approx(
            float(mel_loss(objective.log_mel(batch["audio"]), objective.log_mel(fake))), rel=1e-5)


def test_a_tiny_run_lowers_the_mel_error_and_its_checkpoint_vocodes(tmp_path, audio_dir):
    config = load_config("hifigan-v3", TINY)
    trainer = Trainer(config, audio_dir, tmp_path / "run", progress=False)
    before = trainer.validation_loss()
    trainer.fit(20)
    after = trainer.validation_loss()
    assert after < 0.5 * before, (before, after)
    state = load_training_state(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])
    assert sorted(state["optimizers"]) == ["discriminator", "generator"]
    vocoder = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32")
    mel = torch.randn(config.mel.n_mels, 7)
    with torch.no_grad():
        want = trainer.model.generator(mel.unsqueeze(0))[0]
    out = vocoder.vocode(mel)
    assert out.shape == (7 * 256,)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)    # EMA off: the trained weights, norm folded
    assert vocoder.model.discriminators is None                     # inference loads the generator alone
    assert all(k.startswith("generator.") for k in vocoder.model.state_dict())
    with pytest.raises(WavediffError, match="precision in \\['fp32', 'bf16'\\]"):
        Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="int8")


def test_a_resumed_run_continues_bit_identically_with_both_optimisers_and_the_decay(tmp_path, audio_dir):
    # 10 clips, 2 validation, batch 4: 2 steps an epoch, so the decay changes the rate every 2 steps
    config = load_config("hifigan-v3", [*TINY, "train.lr_decay=0.9", "train.checkpoint_every=3"])
    straight = Trainer(config, audio_dir, tmp_path / "straight", progress=False)
    straight.fit(6)
    Trainer(config, audio_dir, tmp_path / "split", progress=False).fit(3)
    resumed = Trainer(config, audio_dir, tmp_path / "split", resume=True, progress=False)
    resumed.fit(6)

    def rows(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"], r["loss_discriminator"]) for r in map(json.loads, lines) if "loss" in r]

    assert rows("straight") == rows("split") and len(rows("straight")) == 6
    for a, b in ((straight.model, resumed.model), (straight.optimizers["discriminator"],
                                                    resumed.optimizers["discriminator"])):
        sa, sb = a.state_dict(), b.state_dict()
        if "state" in sa:                                 # an optimiser: its moments and rate
            assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
            sa = {(k, n): t for k, s in sa["state"].items() for n, t in s.items() if torch.is_tensor(t)}
            sb = {(k, n): t for k, s in sb["state"].items() for n, t in s.items() if torch.is_tensor(t)}
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [g["lr"] for g in resumed.optimizers["generator"].param_groups] == [
        config.train.learning_rate * 0.9 ** 2]        # step 6 ran in epoch 2
