"""wavediff.diffusion.objective: the ε-prediction loss, PriorGrad's weighted loss and the optional
multi-resolution STFT term on x̂₀.

References: the closed-form moments of q(x_t | x_0); the loss of an oracle and of a zero denoiser in
closed form; a doubled signal and the evaluation's own MR-STFT distance."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.schedule import linear_schedule
from wavediff.errors import WavediffError


def test_add_noise_has_the_closed_form_moments():
    s = linear_schedule(50, 1e-4, 0.05)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7, dtype=torch.float64)
    t = torch.full((20000,), 30)
    xt = s.add_noise(x0, torch.randn(x0.shape, generator=g, dtype=torch.float64), t)
    abar = s.alphas_cumprod[30].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - abar, rel=0.03)


def test_loss_is_zero_for_the_oracle_and_mean_abs_noise_for_zero():
    s = linear_schedule(50, 1e-4, 0.05)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(64, 256, generator=g) * 0.3
    noise = torch.randn(64, 256, generator=g)
    steps = torch.randint(0, 50, (64,), generator=g)

    def oracle(x_t, t):
        return noise

    assert diffusion_loss(oracle, x0, s, steps=steps, noise=noise).item() == 0.0
    zero = diffusion_loss(lambda x, t: torch.zeros_like(x), x0, s, loss_type="l2", steps=steps, noise=noise)
    assert zero.item() == pytest.approx(noise.square().mean().item())
    with pytest.raises(WavediffError, match="l1"):
        diffusion_loss(oracle, x0, s, loss_type="huber")


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


def test_stft_loss_in_closed_form_and_against_the_evaluation_metric():
    from wavediff.diffusion.objective import stft_loss
    from wavediff.metrics.spectral import multi_resolution_stft_distance

    torch.manual_seed(1)
    x = torch.randn(2, 6000)
    assert float(stft_loss(x, x)) == 0.0
    # |S^| = 2 |S| everywhere: spectral convergence 1, log distance ln 2, at every resolution
    assert float(stft_loss(x, 2 * x)) == pytest.approx(1 + math.log(2), rel=1e-4)
    y = x + 0.3 * torch.randn(2, 6000)
    # one item: the training loss is the evaluation's MR-STFT distance
    assert float(stft_loss(x[:1], y[:1])) == pytest.approx(multi_resolution_stft_distance(x[0], y[0]), rel=1e-5)
    est = y.clone().requires_grad_(True)
    stft_loss(x, est).backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().max() > 0


def test_spectral_term_is_zero_for_an_oracle_and_closed_form_for_a_zero_denoiser():
    from wavediff.diffusion.objective import stft_loss

    torch.manual_seed(2)
    sched = linear_schedule(50, 1e-4, 0.05)
    x0 = torch.randn(2, 4096) * 0.3
    eps = torch.randn(2, 4096)
    steps = torch.tensor([3, 30])
    abar = sched.alphas_cumprod[steps].unsqueeze(1).float()
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def oracle(x, t):
        return (x - abar.sqrt() * x0) / (1 - abar).sqrt()

    assert float(diffusion_loss(oracle, x0, sched, steps=steps, noise=eps, spectral_weight=0.1)) < 1e-6
    zero = diffusion_loss(lambda x, t: torch.zeros_like(x), x0, sched, steps=steps, noise=eps, spectral_weight=0.1)
    want = eps.square().mean() + 0.1 * stft_loss(x0, x_t / abar.sqrt())
    assert float(zero) == pytest.approx(float(want), rel=1e-5)
