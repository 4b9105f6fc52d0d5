"""PriorGrad's data-dependent prior: sigma from the mel, the weighted objective, sampling,
the inference engine (one pass and streaming) and training.

References: sigma computed by hand from known mel magnitudes; the loss of an oracle and
of a zero denoiser in closed form; Algorithm 2 with the training module and the noise
scaled by hand."""
from __future__ import annotations

import json
import math

import pytest
import torch

from test_inference import _chain, _random_model
from wavediff.audio.mel import MelFrontend, mel_config_from_preset
from wavediff.config import load_config
from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.prior import frame_std, max_frame_energy, noise_std
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import linear_schedule, sampling_schedule
from wavediff.errors import WavediffError
from wavediff.inference import EngineMode, InferenceEngine


def _prior_config(preset="tiny", energy_max=2.0, std_min=0.1):
    return load_config(preset, ["diffusion.prior=priorgrad", f"diffusion.prior_energy_max={energy_max}",
                                f"diffusion.prior_std_min={std_min}"])


@pytest.mark.parametrize("mel_preset", ["diffwave", "hifigan"])
def test_sigma_is_the_clamped_frame_energy_of_known_magnitudes(mel_preset):
    cfg = _prior_config()
    mel_cfg = mel_config_from_preset(mel_preset)
    n = mel_cfg.n_mels
    # every band of frame f holds magnitude a_f: E_f = sqrt(n a_f)
    a = torch.tensor([0.5, 2.0 / n, 2e-4, 8.0 / n, 3.0])
    mags = a.repeat(n, 1)                                           # (n_mels, F)
    mel = MelFrontend(mel_cfg).compress(mags)
    E = torch.sqrt(n * a)
    want = torch.clamp(E / 2.0, 0.1, 1.0)
    got = frame_std(mel, mel_cfg, cfg.diffusion)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    assert got.min() == pytest.approx(0.1) and got.max() == pytest.approx(1.0)   # both clamps are hit
    per_sample = noise_std(mel, mel_cfg, cfg.diffusion)
    assert per_sample.shape == (mel.shape[-1] * mel_cfg.hop_length,)
    torch.testing.assert_close(per_sample[::mel_cfg.hop_length], want, rtol=1e-4, atol=1e-6)
    assert max_frame_energy([mel[:, :2], mel[:, 2:]], mel_cfg) == pytest.approx(float(E.max()), rel=1e-4)


def test_standard_prior_has_no_sigma_and_priorgrad_needs_its_scale():
    cfg = load_config("base")
    assert noise_std(torch.rand(cfg.mel.n_mels, 3), cfg.mel, cfg.diffusion) is None
    unset = load_config("tiny", ["diffusion.prior=priorgrad"])
    with pytest.raises(WavediffError, match="prior_energy_max"):
        noise_std(torch.rand(cfg.mel.n_mels, 3), unset.mel, unset.diffusion)


@pytest.mark.parametrize("override, match", [
    (["diffusion.prior=gaussian"], "diffusion.prior"),
    (["diffusion.prior_std_min=0"], "prior_std_min"),
    (["diffusion.prior_energy_max=-1"], "prior_energy_max"),
])
def test_bad_prior_settings_are_refused(override, match):
    with pytest.raises(WavediffError, match=match):
        load_config("tiny", override)


def test_priorgrad_needs_a_mel_vocoder():
    with pytest.raises(WavediffError, match="conditioning='mel'"):
        load_config("sc09-class-cpu", ["diffusion.prior=priorgrad"])


def test_weighted_loss_in_closed_form():
    torch.manual_seed(0)
    sched = linear_schedule(50, 1e-4, 0.05)
    x0 = torch.randn(3, 64) * 0.3
    eps = torch.randn(3, 64)
    steps = torch.tensor([0, 20, 49])
    std = torch.rand(3, 64) * 0.9 + 0.1
    abar = sched.alphas_cumprod[steps].unsqueeze(1).float()

    def oracle(x_t, t):   # knows x0: returns exactly the noise that was added, sigma * eps
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    loss = diffusion_loss(oracle, x0, sched, steps=steps, noise=eps, noise_std=std)
    assert float(loss) < 1e-8
    zero = diffusion_loss(lambda x, t: torch.zeros_like(x), x0, sched, steps=steps, noise=eps, noise_std=std)
    # ((0 - sigma eps) / sigma)^2 = eps^2, whatever sigma
    assert float(zero) == pytest.approx(float(eps.square().mean()), rel=1e-5)
    l1 = diffusion_loss(lambda x, t: torch.zeros_like(x), x0, sched, steps=steps, noise=eps, noise_std=std,
                        loss_type="l1")
    assert float(l1) == pytest.approx(float(eps.abs().mean()), rel=1e-5)
    # sigma = 1 is the standard objective
    den = lambda x, t: 0.5 * x  # noqa: E731
    assert float(diffusion_loss(den, x0, sched, steps=steps, noise=eps, noise_std=torch.ones_like(x0))) == \
        pytest.approx(float(diffusion_loss(den, x0, sched, steps=steps, noise=eps)), rel=1e-6)


def test_sampler_scales_the_start_and_every_step_noise_by_sigma():
    sched = linear_schedule(50, 1e-4, 0.05)
    chain = sampling_schedule(sched, 3, (1e-3, 0.05, 0.5))
    std = torch.linspace(0.1, 1.0, 40).unsqueeze(0)
    out = sample(lambda x, t: torch.zeros_like(x), (1, 40), chain, generator=torch.Generator().manual_seed(5),
                 noise_std=std)
    # by hand: with eps = 0 each step divides by sqrt(1 - eta) and adds sigma_s * std * z
    g = torch.Generator().manual_seed(5)
    x = torch.randn((1, 40), generator=g) * std
    for s in range(chain.num_steps - 1, -1, -1):
        x = x / math.sqrt(1 - float(chain.etas[s]))
        if s > 0:
            x = x + float(chain.sigmas[s]) * torch.randn((1, 40), generator=g) * std
    torch.testing.assert_close(out, x)


def _prior_reference(model, mel, chain, seed, std):
    with torch.no_grad():
        return sample(lambda x, t: model(x, t, mel=mel.unsqueeze(0)), (1, mel.shape[-1] * model.hop_length),
                      chain, generator=torch.Generator().manual_seed(seed), noise_std=std.unsqueeze(0))[0]


@pytest.mark.parametrize("streaming", [False, True])
def test_engine_with_the_prior_equals_the_training_module(streaming):
    cfg, model = _random_model(["diffusion.prior=priorgrad", "diffusion.prior_energy_max=3.0"])
    mels = [torch.rand(cfg.mel.n_mels, 9), torch.rand(cfg.mel.n_mels, 4) * 0.3]
    stds = [noise_std(m, cfg.mel, cfg.diffusion) for m in mels]
    assert float(stds[1].min()) < float(stds[0].max())
    chain = _chain(cfg, 6)
    engine = InferenceEngine(model, mode=EngineMode.stream(700) if streaming else EngineMode.one_pass())
    gens = [torch.Generator().manual_seed(30 + i) for i in range(len(mels))]
    out = engine.vocode(mels, chain, gens, noise_std=stds)
    for i, m in enumerate(mels):
        ref = _prior_reference(model, m, chain, 30 + i, stds[i])
        assert (out[i] - ref).abs().max() < 1e-4
    # and the prior changes the result (the scaling is applied, not ignored)
    plain = engine.vocode(mels, chain, [torch.Generator().manual_seed(30 + i) for i in range(len(mels))])
    assert (plain[1] - out[1]).abs().max() > 1e-2


def test_engine_refuses_a_sigma_of_the_wrong_length():
    cfg, model = _random_model()
    mel = torch.rand(cfg.mel.n_mels, 5)
    with pytest.raises(WavediffError, match="noise_std 0 has"):
        InferenceEngine(model).vocode([mel], _chain(cfg), noise_std=[torch.ones(7)])


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

