"""The WaveNet family through the common trainer, checkpoints and Vocoder: the objective against
the closed forms, a tiny run that lowers the likelihood loss, and vocoding from its checkpoint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wavediff.config import load_config
from wavediff.models.family import family_of
from wavediff.models.wavenet.mol import mol_log_likelihood
from wavediff.models.wavenet.mulaw import mulaw_encode
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

# 4 layers of 16 channels (receptive field 16), crops of 4 frames, batch 4
TINY = ["wavenet.layers=4", "wavenet.dilation_cycle=4", "wavenet.residual_channels=16", "wavenet.gate_channels=16",
        "wavenet.skip_channels=16", "data.crop_frames=4", "data.val_count=2", "train.batch_size=4",
        "train.learning_rate=3e-3", "train.val_every=1000", "train.checkpoint_every=1000", "train.log_every=1",
        "train.ema_decay=0", "train.precision=fp32"]


@pytest.mark.parametrize("name", ["wavenet-mulaw", "wavenet-large", "wavenet-sc09"])
def test_presets_state_their_receptive_field_and_crops_cover_it(name):
    config = load_config(name)
    family = family_of(config)
    model = family.build_model(config)
    facts = family.describe(model, config)
    w = config.wavenet
    assert facts["receptive_field"] == {"wavenet-large": 1 + 2 * 4095}.get(name, 1 + 2 * 1023)
    # per layer: dilated conv, conditioning 1x1 (no bias), residual and skip 1x1 on half the gate
    cond = config.mel.n_mels if config.model.conditioning == "mel" else 0
    layer = (w.residual_channels * w.gate_channels * 2 + w.gate_channels + cond * w.gate_channels
             + (w.gate_channels // 2 + 1) * (w.residual_channels + w.skip_channels))
    inputs = 256 * w.residual_channels if w.output == "mulaw" else 2 * w.residual_channels
    head = (w.skip_channels + 1) * w.skip_channels + (w.skip_channels + 1) * w.output_channels
    upsampler = sum(p.numel() for p in model.upsampler.parameters()) if model.upsampler is not None else 0
    assert facts["parameters"] == w.layers * layer + inputs + head + upsampler
    assert w.output_channels == (30 if name == "wavenet-large" else 256)
    assert config.clip_samples >= facts["receptive_field"] + 8 * config.mel.hop_length


@pytest.mark.parametrize("output", ["mulaw", "mol"])
def test_the_loss_is_the_mean_nll_of_each_sample_given_the_ones_before(output):
    config = load_config("wavenet-mulaw", [*TINY, f"wavenet.output={output}", "wavenet.mixtures=2"])
    family = family_of(config)
    torch.manual_seed(0)
    model = family.build_model(config)
    audio = torch.rand(2, 4 * 256) * 1.6 - 0.8
    mel = torch.randn(2, config.mel.n_mels, 4)
    batch = {"audio": audio, "mel": mel}
    got = family.objective(config, torch.device("cpu")).loss(model, batch, "wavenet", training=True)
    # the input at t is the sample t - 1 (silence before the first); the target the sample t
    start = torch.zeros(2, 1)
    if output == "mulaw":
        inputs = torch.cat([mulaw_encode(start), mulaw_encode(audio)[:, :-1]], dim=1)
        logits = model(inputs, mel=mel)
        want = -F.log_softmax(logits, dim=1).gather(1, mulaw_encode(audio).unsqueeze(1)).mean()
    else:
        logits = model(torch.cat([start, audio[:, :-1]], dim=1), mel=mel)
        want = -mol_log_likelihood(logits, audio, 2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_a_tiny_run_lowers_the_loss_and_its_checkpoint_vocodes(tmp_path, audio_dir):
    config = load_config("wavenet-mulaw", TINY)
    trainer = Trainer(config, audio_dir, tmp_path / "run", progress=False)
    before = trainer.validation_loss()
    trainer.fit(60)
    after = trainer.validation_loss()
    assert after < before - 0.5, (before, after)       # nats per sample; ln 256 = 5.5 at the start
    vocoder = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32")
    mel = torch.rand(config.mel.n_mels, 3)                   # the diffwave front-end's [0, 1] range
    a = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))
    b = vocoder.vocode(mel, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3 * 256,) and torch.equal(a, b) and a.abs().max() <= 1
    assert Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="auto").precision == "fp32"
    greedy = vocoder.config.sampler.with_overrides(["temperature=0"])
    c = vocoder.vocode(mel, generator=torch.Generator().manual_seed(1), sampler=greedy)
    d = vocoder.vocode(mel, generator=torch.Generator().manual_seed(2), sampler=greedy)
    assert torch.equal(c, d) and not torch.equal(a, c)


CLIP = ["mel.sample_rate=8000", "mel.f_max=4000", "mel.hop_length=160", "mel.n_fft=512", "mel.win_length=512",
        "data.crop_frames=3", "data.val_count=3", "data.normalize=none", *TINY[:5], "train.batch_size=4",
        "train.val_every=1000", "train.checkpoint_every=1000", "train.precision=fp32", "train.ema_decay=0"]


@pytest.fixture(scope="module")
def wavenet_class_run(tmp_path_factory, digits):
    run = tmp_path_factory.mktemp("runs") / "wavenet-class"
    config = load_config("wavenet-sc09", [*CLIP, "model.conditioning=class", "model.num_classes=3", "model.class_names=[]"])
    Trainer(config, digits, run, progress=False).fit(max_steps=3)
    return run


def test_a_class_checkpoint_generates_clips_by_label_each_from_its_own_seed(wavenet_class_run):
    from wavediff.pipelines import Synthesizer

    synth = Synthesizer.from_checkpoint(wavenet_class_run, device="cpu")
    assert synth.precision == "fp32" and len(synth.class_names) == 3
    clips = synth.generate(4, labels=["Low", "Mid", "High", "Low"], seed=5, batch_size=4)
    assert clips.shape == (4, 480) and clips.abs().max() <= 1 and clips.std() > 0
    one_by_one = synth.generate(4, labels=["Low", "Mid", "High", "Low"], seed=5, batch_size=1)
    assert torch.equal(clips, one_by_one)                    # clip i depends on seed + i alone
    assert not torch.equal(clips[0], clips[3])               # same label, own draws
    greedy = synth.generate(2, labels="Mid", seed=0, temperature=0.0)
    assert torch.equal(greedy[0], greedy[1])                  # no randomness left at temperature 0
    with pytest.raises(Exception, match="generates in fp32"):
        Synthesizer.from_checkpoint(wavenet_class_run, device="cpu", precision="bf16")


def test_wavediff_generate_and_evaluate_generation_take_a_wavenet(wavenet_class_run, classifier_dir, tone_data,
                                                                  tmp_path):
    from wavediff.cli import main

    out = tmp_path / "clips"
    assert main(["generate", "--checkpoint", str(wavenet_class_run), "--n", "3", "--temperature", "0.8",
                 "--out", str(out), "--device", "cpu"]) == 0
    rows = (out / "samples.tsv").read_text().splitlines()
    assert rows[0] == "path\tlabel" and len(rows) == 4 and len(list(out.glob("*.wav"))) == 3
    report = tmp_path / "report"
    assert main(["evaluate-generation", "--classifier", str(classifier_dir), "--train", str(tone_data[0]),
                 "--checkpoint", str(wavenet_class_run), "--n", "6", "--per-class", "2", "--out", str(report),
                 "--device", "cpu"]) == 0
    assert "wavenet-class" in (report / "results.md").read_text()
