"""DiffWave on continuous noise levels (``diffusion.noise_input='level'``, WaveGrad's conditioning).

References: WaveGrad's level sampling and encoding written out in closed form (levels uniform
between two adjacent steps' sqrt(abar); sinusoids of 5000 l at frequencies 1e-4..1), the forward
process recovered from what the network was given, and sample() with the training module."""
from __future__ import annotations

import math

import pytest
import torch
from dataclasses import replace

from wavediff.config import load_config
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import linear_schedule
from wavediff.diffusion.solvers import Solver
from wavediff.errors import WavediffError
from wavediff.inference import EngineMode, InferenceEngine
from wavediff.models.diffwave import build_model
from wavediff.models.diffwave.conditioning import noise_level_encoding
from wavediff.models.diffwave.objective import DiffWaveObjective
from wavediff.models.diffwave.vocoding import reverse_chain

from helpers import random_vocoder_model

LEVEL = ["diffusion.noise_input=level"]


def test_training_levels_lie_uniformly_between_adjacent_steps():
    s = linear_schedule(50, 1e-4, 0.05)
    root = s.alphas_cumprod.sqrt()
    steps = torch.tensor([0, 0, 7, 49, 49])
    pos = torch.tensor([0.0, 1.0, 0.25, 0.0, 0.5], dtype=torch.float64)
    lv = s.noise_levels(steps, pos)
    expected = [root[0], 1.0, root[7] + 0.25 * (root[6] - root[7]), root[49], root[49] + 0.5 * (root[48] - root[49])]
    torch.testing.assert_close(lv, torch.tensor([float(e) for e in expected], dtype=torch.float64))


def test_level_encoding_is_wavegrads_sinusoids():
    lv = torch.tensor([0.3, 0.9, 1.0])
    enc = noise_level_encoding(lv, dim=8, scale=5000.0)
    freqs = [10 ** (-4 * (3 - j) / 3) for j in range(4)]      # 1e-4 .. 1, geometric
    for i, l in enumerate(lv.tolist()):
        ref = [math.sin(5000 * l * f) for f in freqs] + [math.cos(5000 * l * f) for f in freqs]
        torch.testing.assert_close(enc[i], torch.tensor(ref, dtype=torch.float32), atol=1e-5, rtol=0)


def test_objective_noises_to_continuous_levels_and_tells_the_network(micro_config):
    cfg = replace(micro_config, diffusion=replace(micro_config.diffusion, noise_input="level"))
    objective = DiffWaveObjective(cfg, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    hop = cfg.mel.hop_length
    batch = {"audio": 0.5 * torch.randn(200, 4 * hop, generator=g), "mel": torch.rand(200, cfg.mel.n_mels, 4, generator=g),
             "seed": torch.arange(200)}
    calls = []

    def zero(x, t, **cond):
        calls.append((x.clone(), t.clone()))
        return torch.zeros_like(x)

    loss = objective.loss(zero, batch, "denoiser", training=True)
    (x_t, lv), = calls
    s = objective.schedule
    assert float(lv.min()) >= float(s.alphas_cumprod[-1].sqrt()) - 1e-6 and float(lv.max()) <= 1.0
    assert len(set(lv.tolist())) == 200                               # continuous, not a step's level
    l64 = lv.double().unsqueeze(-1)
    eps = (x_t.double() - l64 * batch["audio"].double()) / (1 - l64 ** 2).sqrt()
    assert float(loss) == pytest.approx(float((eps ** 2).mean()), rel=1e-3)
    assert abs(float(eps.mean())) < 0.02 and float(eps.var()) == pytest.approx(1.0, abs=0.03)
    # the step-conditioned objective draws the same steps and noise (the position is drawn last)
    _, _, steps_l, noise_l, _ = objective.inputs(batch, True)
    _, _, steps_s, noise_s, _ = DiffWaveObjective(micro_config, torch.device("cpu")).inputs(batch, True)
    assert torch.equal(steps_l, steps_s) and torch.equal(noise_l, noise_s)


def test_a_level_model_is_called_with_each_steps_level_on_every_engine_mode():
    cfg, model = random_vocoder_model(LEVEL)
    assert model.step_embedding.level_scale == 5000.0
    chain = reverse_chain(cfg, 6)
    torch.testing.assert_close(chain.timesteps, chain.alphas_cumprod.sqrt())
    assert reverse_chain(load_config("tiny", []), 6).timesteps[-1] > 1    # a step model: aligned steps
    mel = torch.rand(cfg.mel.n_mels, 7)
    for solver in (Solver(), Solver("dpm-solver")):
        with torch.no_grad():
            ref = sample(lambda x, t: model(x, t, mel=mel.unsqueeze(0)), (1, 7 * model.hop_length), chain,
                         generator=torch.Generator().manual_seed(3), solver=solver)[0]
        assert ref.abs().max() > 0.1
        for mode in (EngineMode.one_pass(), EngineMode.stream(500)):
            out = InferenceEngine(model, mode=mode).vocode([mel], chain, torch.Generator().manual_seed(3),
                                                           solver=solver)[0]
            assert (out - ref).abs().max() < 1e-4


def test_noise_input_is_checked():
    with pytest.raises(WavediffError, match="noise_input"):
        load_config("tiny", ["diffusion.noise_input=sigma"])
    with pytest.raises(WavediffError, match="level_scale"):
        load_config("tiny", ["diffusion.level_scale=0"])
    cfg = load_config("tiny", LEVEL)
    assert build_model(cfg).step_embedding.level_scale == 5000.0


def test_a_level_run_trains_on_the_fused_path_and_vocodes(micro_config, audio_dir, tmp_path):
    from wavediff.pipelines import Vocoder
    from wavediff.training.trainer import Trainer

    cfg = replace(micro_config, diffusion=replace(micro_config.diffusion, noise_input="level"))
    trainer = Trainer(cfg, audio_dir, tmp_path / "run", progress=False)
    assert trainer.config.train.implementation == "fused"
    trainer.fit(4)
    vocoder = Vocoder.from_checkpoint(tmp_path / "run", device="cpu", precision="fp32")
    assert vocoder.config.diffusion.noise_input == "level"
    mel = torch.rand(cfg.mel.n_mels, 3)
    chain = reverse_chain(vocoder.config, 6)
    with torch.no_grad():
        ref = sample(lambda x, t: vocoder.model(x, t, mel=mel.unsqueeze(0)), (1, 3 * cfg.mel.hop_length), chain,
                     generator=torch.Generator().manual_seed(0))[0].clamp(-1, 1)
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0))
    assert (out - ref).abs().max() < 1e-4
