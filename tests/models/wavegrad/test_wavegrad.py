"""wavediff.models.wavegrad: the presets build the paper's network (15.9M parameters against the
paper's 15M); the blocks resample by their factors and FiLM adds WaveGrad's level encoding in
closed form; a tiny run through the trainer lowers the L1 loss on continuous levels, and its
checkpoint vocodes as sample() runs the trained module over the chain's noise levels, under every
update rule; the CLI trains, vocodes and evaluates it."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from wavediff.config import WAVEGRAD_SCHEDULE_3, WAVEGRAD_SCHEDULE_6, load_config
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import align_schedule, at_noise_levels, linear_schedule
from wavediff.diffusion.solvers import Solver
from wavediff.errors import WavediffError
from wavediff.models.family import family_of
from wavediff.models.wavegrad import DBlock, FiLM, UBlock, count_parameters
from wavediff.pipelines import Vocoder
from wavediff.training.trainer import Trainer

TINY = ["wavegrad.upsample_channels=[16,16,8,8,8]", "wavegrad.downsample_channels=[4,8,8,16,16]",
        "wavegrad.mel_channels=16", "data.crop_frames=8", "data.val_count=2", "train.batch_size=4",
        "train.learning_rate=3e-3", "train.val_every=1000", "train.checkpoint_every=10", "train.log_every=5",
        "train.precision=fp32", "train.val_batches=1"]


@pytest.mark.parametrize("preset, hop, rate, parameters", [("wavegrad-base", 300, 24000, 15_920_993),
                                                           ("wavegrad", 256, 22050, 15_810_401),
                                                           ("wavegrad-cpu", 256, 22050, 1_025_945)])
def test_presets_build_the_papers_network(preset, hop, rate, parameters):
    config = load_config(preset)
    model = family_of(config).build_model(config)
    assert count_parameters(model) == parameters
    assert config.mel.hop_length == config.wavegrad.hop_length == hop and config.mel.sample_rate == rate
    d = config.diffusion
    assert (d.num_steps, d.beta_start, d.beta_end, d.loss, d.noise_input) == (1000, 1e-6, 0.01, "l1", "level")
    assert d.fast_schedule == WAVEGRAD_SCHEDULE_6 and d.schedule_for(3) == (3e-4, 6e-2, 9e-1)
    out = model(torch.zeros(2, 3 * hop), torch.tensor([0.2, 0.9]), mel=torch.zeros(2, config.mel.n_mels, 3))
    assert out.shape == (2, 3 * hop)


def test_the_family_refuses_what_it_cannot_build():
    with pytest.raises(WavediffError, match="noise_input='level'"):
        family_of(load_config("wavegrad-cpu", ["diffusion.noise_input=step"]))
    with pytest.raises(WavediffError, match="upsample 256 times, but mel.hop_length=300"):
        family_of(load_config("wavegrad-cpu", ["mel.hop_length=300"]))
    with pytest.raises(WavediffError, match="one per upsampling factor"):
        load_config("wavegrad-cpu", ["wavegrad.upsample_channels=[8,8]"])


def test_blocks_resample_by_their_factors():
    x = torch.randn(2, 6, 12)
    up = UBlock(6, 4, 3, (1, 2, 4, 8), 0.2)
    assert up(x, torch.ones(2, 4, 36), torch.zeros(2, 4, 36)).shape == (2, 4, 36)
    assert DBlock(6, 5, 4, 0.2)(x).shape == (2, 5, 3)
    # the downsampling path reads every factor-th sample: the others do not reach the shortcut at all
    block = DBlock(1, 1, 4, 0.2)
    for conv in block.convs:
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    y = torch.arange(12.0).reshape(1, 1, 12)
    torch.testing.assert_close(block(y), block.shortcut.weight[0, 0, 0] * y[..., ::4] + block.shortcut.bias[0])


def test_film_adds_wavegrads_level_encoding_between_its_convolutions():
    film = FiLM(4, 3, level_scale=5000.0, slope=0.2)
    torch.nn.init.zeros_(film.inner.weight)
    torch.nn.init.zeros_(film.inner.bias)     # the features vanish: the outer conv sees the encoding alone
    levels = torch.tensor([0.35, 0.8])
    scale, shift = film(torch.randn(2, 4, 5), levels)
    freqs = [1e-4, 1.0]                        # two frequencies, geometric from 1e-4 to 1
    enc = torch.tensor([[math.sin(5000 * l * f) for f in freqs] + [math.cos(5000 * l * f) for f in freqs]
                        for l in levels.tolist()])
    ref = F.conv1d(enc.unsqueeze(-1).expand(2, 4, 5), film.outer.weight, film.outer.bias, padding=1)
    torch.testing.assert_close(torch.cat([scale, shift], 1), ref, atol=1e-5, rtol=1e-5)


def test_a_tiny_run_learns_and_vocodes_as_the_chain_over_noise_levels(tmp_path, audio_dir):
    config = load_config("wavegrad-cpu", TINY)
    trainer = Trainer(config, audio_dir, tmp_path / "run", progress=False)
    before = trainer.validation_loss()
    trainer.fit(30)
    after = trainer.validation_loss()
    assert after < 0.8 * before, (before, after)
    vocoder = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32")
    mel = torch.rand(config.mel.n_mels, 5)
    schedule = linear_schedule(1000, 1e-6, 0.01)
    chains = {6: align_schedule(schedule, WAVEGRAD_SCHEDULE_6), 3: align_schedule(schedule, WAVEGRAD_SCHEDULE_3)}
    for steps, method in ((6, "ancestral"), (6, "dpm-solver"), (3, "ddim")):
        chain = at_noise_levels(chains[steps])
        with torch.no_grad():
            ref = sample(lambda x, t: vocoder.model(x, t, mel=mel.unsqueeze(0)), (1, 5 * 256), chain,
                         generator=torch.Generator().manual_seed(4), solver=Solver(method))[0]
        out, = vocoder.vocoding.vocode([mel], steps=steps, etas=None, generators=[torch.Generator().manual_seed(4)],
                                       sampler=config.sampler.with_overrides([method]))
        assert out.shape == (5 * 256,)
        if (steps, method) == (6, "ancestral"):
            assert bool(torch.isfinite(ref).all()) and ref.abs().max() > 0
        # an undertrained WaveGrad's chain may diverge: the same computation diverges the same way
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4, equal_nan=True)
    bf16 = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="bf16").vocode(
        mel, 6, generator=torch.Generator().manual_seed(4))
    fp32 = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(4))
    assert (bf16 - fp32).abs().max() < 0.1 * max(1.0, float(fp32.abs().max()))
    with pytest.raises(WavediffError, match=r"precision in \['fp32', 'bf16'\]"):
        Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="int8")


def test_the_cli_trains_vocodes_and_evaluates_wavegrad(tmp_path, audio_dir):
    run = tmp_path / "run"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "wavediff", *args], capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)

    proc = cli("train", "--config", "wavegrad-cpu", "--data", str(audio_dir), "--out", str(run), "--max-steps", "2",
               "--no-progress", *[x for o in TINY for x in ("--set", o)])
    assert proc.returncode == 0, proc.stderr
    proc = cli("vocode", "--checkpoint", str(run), "--input", str(audio_dir / "clip_00.wav"), "--out",
               str(tmp_path / "voc"), "--steps", "3", "--sampler", "dpm-solver")
    assert proc.returncode == 0, proc.stderr
    proc = cli("evaluate", "--checkpoint", str(run), "--label", "wg", "--data", str(audio_dir), "--limit", "1",
               "--steps", "1", "6", "--gl-iters", "--sampler", "ancestral", "--sampler", "ddim",
               "--out", str(tmp_path / "eval"))
    assert proc.returncode == 0, proc.stderr
    names = {s["name"] for s in json.loads((tmp_path / "eval" / "results.json").read_text())["systems"]}
    assert {"wg, 1 steps, ancestral", "wg, 6 steps, ddim"} <= names
    assert (tmp_path / "eval" / "steps.png").is_file() or any((tmp_path / "eval").glob("*steps*.png"))


def test_the_vocoder_zeroes_and_reports_samples_of_a_diverged_chain(tmp_path, audio_dir, caplog, monkeypatch):
    config = load_config("wavegrad-cpu", TINY)
    Trainer(config, audio_dir, tmp_path / "run", progress=False).fit(1)
    vocoder = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32")
    diverged = torch.tensor([0.5, float("nan"), float("inf"), -2.0])
    monkeypatch.setattr(vocoder.vocoding, "vocode", lambda mels, **_: [diverged.clone() for _ in mels])
    with caplog.at_level("WARNING"):
        out = vocoder.vocode(torch.rand(config.mel.n_mels, 1))
    torch.testing.assert_close(out, torch.tensor([0.5, 0.0, 0.0, -1.0]))
    assert "2 of 4 samples are not finite" in caplog.text


def test_the_preview_is_the_fast_schedule_over_noise_levels():
    config = load_config("wavegrad-cpu", TINY)
    family = family_of(config)
    model = family.build_model(config).eval()
    cond = {"mel": torch.rand(1, config.mel.n_mels, 4)}
    out = family.preview(model, config, cond, 4 * 256, torch.Generator().manual_seed(2), torch.device("cpu"))
    chain = at_noise_levels(align_schedule(linear_schedule(1000, 1e-6, 0.01), WAVEGRAD_SCHEDULE_6))
    with torch.no_grad():
        ref = sample(model, (1, 4 * 256), chain, cond=cond, generator=torch.Generator().manual_seed(2))[0]
    torch.testing.assert_close(out, ref, equal_nan=True)
