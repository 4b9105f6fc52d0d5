"""Sampling held to the mel: the Griffin-Lim projection, a chain started from Griffin-Lim
(shallow diffusion) and GLA-Grad's consistency step, in the sampler, the engine and the vocoder.

References: a signal whose STFT magnitude is the target is a fixed point of the projection;
librosa's Griffin-Lim for the quality of the torch one; the reverse step's algebra in closed
form (a step that is told x0 lands on x0); the training module's sampler for the engine."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import tone_sweep
from test_inference import _chain, _random_model
from wavediff.audio.griffinlim import MagnitudeProjection, frame_offset, magnitude_from_mel
from wavediff.audio.mel import MelFrontend, mel_config_from_preset
from wavediff.config import SamplerConfig, load_config
from wavediff.diffusion.samplers import estimate_x0, noise_for_estimate, noised_start, sample
from wavediff.diffusion.schedule import linear_schedule, lowest_steps, sampling_schedule
from wavediff.errors import WavediffError
from wavediff.inference import EngineMode, InferenceEngine
from wavediff.pipelines import Vocoder

N_FFT, HOP, WIN = 1024, 256, 1024


def _stft_magnitude(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, WIN, torch.hann_window(WIN), center=True, return_complex=True).abs()


@pytest.mark.parametrize("offset", [0, 128])
def test_a_signal_with_the_target_magnitude_is_left_unchanged(offset):
    x = torch.from_numpy(tone_sweep(0.5))
    target = _stft_magnitude(x[offset:])
    projection = MagnitudeProjection(target, N_FFT, HOP, WIN, offset=offset)
    for iterations in (1, 3):
        out = projection(x, iterations)
        assert out.shape == x.shape
        assert (out - x).abs().max() < 1e-4


def test_projection_moves_a_signal_towards_the_target_magnitude():
    x = torch.from_numpy(tone_sweep(0.5))
    target = _stft_magnitude(x)
    start = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))

    def distance(y):
        return float((_stft_magnitude(y) - target).norm() / target.norm())

    projection = MagnitudeProjection(target, N_FFT, HOP, WIN)
    once = projection(start, 1)
    assert distance(once) < distance(start)
    assert distance(projection(start, 8, momentum=0.0)) <= distance(once) + 1e-6   # plain GL never gets worse


def test_torch_griffin_lim_is_as_consistent_as_librosas():
    import librosa

    x = tone_sweep(0.6)
    target = _stft_magnitude(torch.from_numpy(x)).numpy()
    ours = MagnitudeProjection(target, N_FFT, HOP, WIN).from_noise(torch.Generator().manual_seed(0), 32)
    theirs = librosa.griffinlim(target, n_iter=32, hop_length=HOP, win_length=WIN, n_fft=N_FFT, center=True,
                                length=x.shape[0], random_state=np.random.RandomState(0), init="random")

    def convergence(y):
        mag = _stft_magnitude(torch.as_tensor(y, dtype=torch.float32)).numpy()
        return float(np.linalg.norm(mag - target) / np.linalg.norm(target))

    assert ours.shape == (target.shape[-1] * HOP,)
    assert convergence(ours[: x.shape[0]]) < 1.25 * convergence(theirs) + 0.02
    assert convergence(ours[: x.shape[0]]) < 0.3


@pytest.mark.parametrize("preset", ["diffwave", "hifigan"])
def test_magnitude_from_the_mel_gives_back_the_mel(preset):
    """The NNLS magnitude's mel, through the front-end's own filterbank and compression, is the mel."""
    cfg = mel_config_from_preset(preset)
    fe = MelFrontend(cfg)
    x = torch.from_numpy(tone_sweep(0.5))
    mel = fe(x)
    mag = torch.from_numpy(magnitude_from_mel(mel, fe)).float()
    if cfg.stft_normalized:
        mag = mag / fe.window.square().sum().sqrt()
    again = fe.compress(fe.filterbank @ mag)
    assert mag.shape == (cfg.n_fft // 2 + 1, mel.shape[-1])
    assert float((again - mel).abs().mean()) < 0.02 * float(mel.abs().mean()) + 1e-3
    assert frame_offset(fe) == (0 if cfg.padding == "center" else cfg.hop_length // 2)


@pytest.mark.parametrize("preset", ["diffwave", "hifigan"])
def test_fast_nonnegative_least_squares_is_as_good_as_librosas(preset):
    fe = MelFrontend(mel_config_from_preset(preset))
    mel = fe(torch.from_numpy(tone_sweep(0.8, seed=3)))
    ours = torch.from_numpy(magnitude_from_mel(mel, fe, method="fista"))
    theirs = torch.from_numpy(magnitude_from_mel(mel, fe, method="lbfgs"))
    mags = fe.decompress(mel).double()
    if fe.config.stft_normalized:
        mags = mags * float(fe.window.square().sum().sqrt())
    bank = fe.filterbank.double()

    def residual(a):
        return float((bank @ a - mags).norm() / mags.norm())

    assert float(ours.min()) >= 0 and ours.shape == theirs.shape
    assert residual(ours) <= residual(theirs)
    with pytest.raises(WavediffError, match="method"):
        magnitude_from_mel(mel, fe, method="pinv")


def test_estimate_and_noise_are_inverse_closed_forms():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 50, generator=g), torch.randn(2, 50, generator=g)
    gbar = 0.7
    x_t = math.sqrt(gbar) * x0 + math.sqrt(1 - gbar) * eps
    torch.testing.assert_close(estimate_x0(x_t, eps, gbar), x0)
    torch.testing.assert_close(noise_for_estimate(x_t, x0, gbar), eps)


def test_a_chain_told_the_clean_signal_ends_on_it():
    """With eps = noise_for_estimate(x, y) the last step returns y exactly, whatever came before:
    (x - sqrt(eta_1) eps) / sqrt(1 - eta_1) with gbar_1 = 1 - eta_1 is y."""
    sched = linear_schedule(50, 1e-4, 0.05)
    chain = sampling_schedule(sched, 6, (1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.5))
    target = torch.randn(1, 300, generator=torch.Generator().manual_seed(2))
    seen = []

    def correct(s, x0):
        seen.append(s)
        return target

    out = sample(lambda x, t: torch.randn_like(x), (1, 300), chain, generator=torch.Generator().manual_seed(3),
                 correct_x0=correct)
    torch.testing.assert_close(out, target, rtol=1e-4, atol=1e-4)
    assert seen == [6, 5, 4, 3, 2, 1]
    # a correction that declines every step changes nothing
    den = lambda x, t: 0.3 * x  # noqa: E731
    a = sample(den, (1, 300), chain, generator=torch.Generator().manual_seed(3))
    b = sample(den, (1, 300), chain, generator=torch.Generator().manual_seed(3), correct_x0=lambda s, x0: None)
    torch.testing.assert_close(a, b)


def test_lowest_steps_and_the_noised_start():
    sched = linear_schedule(50, 1e-4, 0.05)
    chain = sampling_schedule(sched, 6, (1e-4, 1e-3, 1e-2, 5e-2, 0.2, 0.5))
    low = lowest_steps(chain, 3)
    assert low.num_steps == 3
    for name in ("etas", "alphas_cumprod", "sigmas", "timesteps"):
        torch.testing.assert_close(getattr(low, name), getattr(chain, name)[:3])
    gbar3 = (1 - 1e-4) * (1 - 1e-3) * (1 - 1e-2)
    x0, z = torch.full((10,), 0.5), torch.ones(10)
    torch.testing.assert_close(noised_start(x0, low, z), torch.full((10,), 0.5 * math.sqrt(gbar3) +
                                                                      math.sqrt(1 - gbar3)), rtol=1e-6, atol=1e-6)
    for bad in (0, 7):
        with pytest.raises(WavediffError, match="1..6"):
            lowest_steps(chain, bad)


def test_engine_with_a_clean_estimate_correction_equals_the_training_module():
    cfg, model = _random_model()
    mels = [torch.rand(cfg.mel.n_mels, 7), torch.rand(cfg.mel.n_mels, 4)]
    chain = _chain(cfg, 6)

    def shrink(s, x0):   # any deterministic correction: halve the estimate at the three noisiest steps
        return 0.5 * x0 if s >= 4 else None

    engine = InferenceEngine(model)
    out = engine.vocode(mels, chain, [torch.Generator().manual_seed(40 + i) for i in range(2)],
                        correct_x0=[shrink, shrink])
    for i, m in enumerate(mels):
        with torch.no_grad():
            ref = sample(lambda x, t: model(x, t, mel=m.unsqueeze(0)), (1, m.shape[-1] * model.hop_length), chain,
                         generator=torch.Generator().manual_seed(40 + i), correct_x0=shrink)[0]
        assert (out[i] - ref).abs().max() < 1e-4
    plain = engine.vocode(mels, chain, [torch.Generator().manual_seed(40 + i) for i in range(2)])
    assert (plain[0] - out[0]).abs().max() > 1e-3
    with pytest.raises(WavediffError, match="streaming"):
        InferenceEngine(model, mode=EngineMode.stream()).vocode(mels, chain, correct_x0=[shrink, None])


def _vocoder(overrides=(), **options):
    cfg, model = _random_model(overrides)
    return Vocoder(model, cfg, **options)


@pytest.mark.parametrize("chunk_seconds", ["stream", None])
def test_griffin_lim_start_runs_the_lowest_steps_from_the_noised_estimate(chunk_seconds):
    vocoder = _vocoder(chunk_seconds=chunk_seconds)
    mel = vocoder.mel(tone_sweep(0.4))
    sampler = SamplerConfig(start="griffin-lim", start_steps=2, griffin_lim_iters=4)
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert out.shape == (mel.shape[-1] * 256,) and bool(torch.isfinite(out).all())
    # by hand: the same draws (GL phase, then z, then the steps' noise) through the training module
    g = torch.Generator().manual_seed(0)
    projection = MagnitudeProjection.from_mel(mel, vocoder.frontend)
    estimate = projection.from_noise(g, 4)
    chain = lowest_steps(vocoder.vocoding.chain(6), 2)
    x_start = noised_start(estimate, chain, torch.randn((1, estimate.shape[0]), generator=g)[0])
    with torch.no_grad():
        ref = sample(lambda x, t: vocoder.model(x, t, mel=mel.unsqueeze(0)), (1, x_start.shape[0]), chain,
                     generator=g, x_start=x_start.unsqueeze(0))[0].clamp(-1, 1)
    assert (out - ref).abs().max() < 1e-4
    with pytest.raises(WavediffError, match="1..6"):
        vocoder.vocode(mel, 6, sampler=SamplerConfig(start="griffin-lim", start_steps=7))


def test_consistency_runs_on_the_default_cpu_engine_and_changes_the_output():
    vocoder = _vocoder()   # chunk_seconds='auto': streaming on a CPU, one pass for whole-step corrections
    mels = [vocoder.mel(tone_sweep(0.3, seed=1)), vocoder.mel(tone_sweep(0.5, seed=2))]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    sampler = SamplerConfig(consistency="griffin-lim", consistency_steps=2, consistency_iters=2)
    out = vocoder.vocode(mels, 6, generator=gens(), sampler=sampler)
    plain = vocoder.vocode(mels, 6, generator=gens())
    for o, p, m in zip(out, plain, mels):
        assert o.shape == p.shape == (m.shape[-1] * 256,) and bool(torch.isfinite(o).all())
        assert (o - p).abs().max() > 1e-3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_both_sampler_options_run_on_the_fast_precisions(precision):
    from wavediff.inference.network import int8_available

    if precision == "int8" and not int8_available():
        pytest.skip("this torch build has no oneDNN int8 convolution")
    vocoder = _vocoder(precision=precision)
    mel = vocoder.mel(tone_sweep(0.4))
    sampler = SamplerConfig(start="griffin-lim", start_steps=3, griffin_lim_iters=4, consistency="griffin-lim",
                            consistency_steps=3, consistency_iters=2)
    out = vocoder.vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    ref = _vocoder(precision="fp32").vocode(mel, 6, generator=torch.Generator().manual_seed(0), sampler=sampler)
    assert out.shape == ref.shape and bool(torch.isfinite(out).all())
    # the last step ends on the Griffin-Lim projection of each precision's estimate: close, not bit-equal
    assert float((out - ref).abs().mean()) < 0.1 * float(ref.abs().mean()) + 1e-3


def test_sampler_settings_are_checked_and_recorded():
    cfg = load_config("tiny", ["sampler.start=griffin-lim", "sampler.start_steps=2"])
    assert cfg.sampler.start == "griffin-lim" and cfg.sampler.uses_mel_inversion
    again = type(cfg).from_json(cfg.to_json()) if hasattr(type(cfg), "from_json") else type(cfg).from_dict(
        cfg.to_dict())
    assert again.sampler == cfg.sampler
    legacy = cfg.to_dict()
    del legacy["sampler"]     # checkpoints written before the section existed
    assert type(cfg).from_dict(legacy).sampler == SamplerConfig()
    with pytest.raises(WavediffError, match="sampler.start"):
        load_config("tiny", ["sampler.start=gl"])
    with pytest.raises(WavediffError, match="consistency_steps"):
        load_config("tiny", ["sampler.consistency_steps=0"])
    with pytest.raises(WavediffError, match="conditioning='mel'"):
        load_config("sc09-class-cpu", ["sampler.consistency=griffin-lim"])
    assert SamplerConfig().with_overrides(["consistency=griffin-lim"]).consistency == "griffin-lim"
