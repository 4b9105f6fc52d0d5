"""wavediff.diffusion.samplers: Algorithm 2, seeding, PriorGrad's scaled noise, the clean-signal
estimate and the noised start, class labels and classifier-free guidance.

References: an oracle denoiser (the exact noise of x_t given x_0), the reverse step's algebra in
closed form (a step told x_0 lands on x_0), and the noise scaled by hand."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.diffusion.samplers import estimate_x0, noise_for_estimate, noised_start, sample
from wavediff.diffusion.schedule import (align_schedule, full_chain, linear_schedule, lowest_steps, sampling_schedule,
    strided_schedule)
from wavediff.errors import WavediffError
from wavediff.pipelines import Synthesizer

from helpers import BASE_ETAS, CLIP


def make_oracle(schedule, x0):
    """Returns the exact noise of x_t given the known x_0 (the ideal epsilon-predictor)."""

    def oracle(x_t, steps):
        root = schedule.sqrt_alphas_cumprod_at(steps).to(x_t.dtype).unsqueeze(-1)
        return (x_t - root * x0) / (1 - root ** 2).sqrt()

    return oracle


def test_full_chain_is_algorithm_2():
    s = linear_schedule(50, 1e-4, 0.05)
    chain = full_chain(s)
    assert chain.timesteps.tolist() == list(range(50))
    torch.testing.assert_close(chain.etas, s.betas)
    abar = s.alphas_cumprod
    tilde = (1 - abar[:-1]) / (1 - abar[1:]) * s.betas[1:]
    torch.testing.assert_close(chain.sigmas[1:], tilde.sqrt())
    assert chain.sigmas[0].item() == 0.0  # no noise at t = 1
    # the full chain given through the fast sampler aligns to integer steps
    torch.testing.assert_close(align_schedule(s, s.betas).timesteps, chain.timesteps, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", ["full", "fast", "strided"])
def test_oracle_denoiser_recovers_x0(kind):
    s = linear_schedule(50, 1e-4, 0.05)
    chain = {"full": full_chain(s), "fast": align_schedule(s, BASE_ETAS), "strided": strided_schedule(s, 8)}[kind]
    g = torch.Generator().manual_seed(1)
    x0 = torch.sin(torch.linspace(0, 20, 400, dtype=torch.float64)).repeat(3, 1) * 0.5
    out = sample(make_oracle(s, x0), x0.shape, chain, generator=g, dtype=torch.float64)
    torch.testing.assert_close(out, x0, atol=1e-8, rtol=0)


def test_same_seed_same_bits_and_different_seed_differs():
    s = linear_schedule(50, 1e-4, 0.05)
    chain = align_schedule(s, BASE_ETAS)

    def denoiser(x, t):
        return 0.5 * x

    a = sample(denoiser, (2, 100), chain, generator=torch.Generator().manual_seed(7))
    b = sample(denoiser, (2, 100), chain, generator=torch.Generator().manual_seed(7))
    c = sample(denoiser, (2, 100), chain, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_follows_the_reverse_chain_with_per_clip_noise(class_run):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    chain = gen.chain(6)
    labels = torch.tensor([0, 2])
    gens = [torch.Generator().manual_seed(3 + i) for i in range(2)]
    ref = sample(lambda x, t: gen.model(x, t, labels=labels), (2, CLIP), chain, generator=gens).clamp(-1, 1)
    out = gen.generate(2, labels=[0, 2], seed=3)
    assert torch.allclose(out, ref, atol=1e-6)


@pytest.mark.parametrize("w", [0.0, 2.5])
def test_guidance_mixes_conditional_and_null_label_predictions(class_run, w):
    gen = Synthesizer.from_checkpoint(class_run, device="cpu")
    null = gen.config.model.null_label
    labels = torch.tensor([1, 1])

    def guided(x, t):   # the formula, with two separate calls of the network
        eps_u = gen.model(x, t, labels=torch.full_like(labels, null))
        eps_c = gen.model(x, t, labels=labels)
        return eps_u + w * (eps_c - eps_u)

    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    ref = sample(guided, (2, CLIP), gen.chain(6), generator=gens).clamp(-1, 1)
    out = gen.generate(2, labels="low", seed=0, guidance_scale=w)
    assert torch.allclose(out, ref, atol=1e-5)


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
