"""Schedules and samplers against the paper's numbers and an oracle denoiser."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.diffusion import (
    align_schedule,
    diffusion_loss,
    full_chain,
    linear_schedule,
    sample,
    sampling_schedule,
    strided_schedule,
)
from wavediff.errors import WavediffError

BASE_ETAS = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5]
LARGE_ETAS = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7]


def test_linear_schedule_closed_form():
    s = linear_schedule(50, 1e-4, 0.05)
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.05)
    expected = math.prod(1 - (1e-4 + (0.05 - 1e-4) * i / 49) for i in range(50))
    assert s.alphas_cumprod[-1].item() == pytest.approx(expected, rel=1e-12)
    assert s.alphas_cumprod[-1].item() == pytest.approx(0.280, abs=1e-3)  # paper notes
    assert linear_schedule(200, 1e-4, 0.02).alphas_cumprod[-1].item() == pytest.approx(0.132, abs=1e-3)


def test_fast_schedule_alignment_matches_the_paper():
    base = align_schedule(linear_schedule(50, 1e-4, 0.05), BASE_ETAS).timesteps.tolist()
    for got, want in zip(base, [0, 0.894, 4.087, 10.45, 22.99, 42.92]):
        assert got == pytest.approx(want, abs=0.01)
    large = align_schedule(linear_schedule(200, 1e-4, 0.02), LARGE_ETAS).timesteps.tolist()
    for got, want in zip(large, [0, 3.201, 13.43, 33.82, 73.98, 170.61]):
        assert got == pytest.approx(want, abs=0.01)


def test_alignment_interpolates_sqrt_alphas_cumprod_exactly():
    s = linear_schedule(50, 1e-4, 0.05)
    chain = align_schedule(s, BASE_ETAS)
    torch.testing.assert_close(s.sqrt_alphas_cumprod_at(chain.timesteps), chain.alphas_cumprod.sqrt())


def test_unalignable_schedules_are_rejected_with_a_reason():
    s = linear_schedule(50, 1e-4, 0.05)
    with pytest.raises(WavediffError, match="below alpha-bar_T"):
        align_schedule(s, [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.7])  # the LARGE schedule on BASE's chain
    with pytest.raises(WavediffError, match="less noise"):
        align_schedule(s, [1e-5, 0.5])
    with pytest.raises(WavediffError, match=r"\(0, 1\)"):
        align_schedule(s, [0.1, 1.5])


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


def test_reverse_steps_are_the_paper_update_in_sampling_order():
    """Each reverse step's coefficients against Algorithm 2 written out from the betas."""
    betas = [1e-4 + (0.05 - 1e-4) * i / 49 for i in range(50)]
    chain = full_chain(linear_schedule(50, 1e-4, 0.05))
    steps = chain.reverse_steps()
    assert [st.number for st in steps] == list(range(50, 0, -1))
    assert [st.adds_noise for st in steps] == [True] * 49 + [False]
    for st in steps:
        t = st.index
        abar = math.prod(1 - b for b in betas[:t + 1])
        abar_prev = math.prod(1 - b for b in betas[:t])
        assert st.t == t
        assert st.eps_coef == pytest.approx(betas[t] / math.sqrt(1 - abar), rel=1e-9)
        assert st.scale == pytest.approx(1 / math.sqrt(1 - betas[t]), rel=1e-9)
        assert st.sigma == pytest.approx(math.sqrt((1 - abar_prev) / (1 - abar) * betas[t]), rel=1e-9, abs=1e-12)
    x, eps = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    top = steps[0]
    expected = (x - betas[49] / math.sqrt(1 - math.prod(1 - b for b in betas)) * eps) / math.sqrt(1 - betas[49])
    torch.testing.assert_close(top.mean(x, eps), expected)
    y = x.clone()
    assert top.mean_(y, eps) is y
    torch.testing.assert_close(y, expected)


def test_steps_select_the_chain():
    s = linear_schedule(50, 1e-4, 0.05)
    assert sampling_schedule(s, 50, BASE_ETAS).num_steps == 50
    assert sampling_schedule(s, 6, BASE_ETAS).timesteps[1].item() == pytest.approx(0.894, abs=1e-3)
    strided = sampling_schedule(s, 10, BASE_ETAS)
    assert strided.num_steps == 10 and strided.timesteps[-1].item() == 49
    torch.testing.assert_close(strided.alphas_cumprod, s.alphas_cumprod[strided.timesteps.long()])
    with pytest.raises(WavediffError, match="1..50"):
        sampling_schedule(s, 51, BASE_ETAS)


def test_add_noise_has_the_closed_form_moments():
    s = linear_schedule(50, 1e-4, 0.05)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7, dtype=torch.float64)
    t = torch.full((20000,), 30)
    xt = s.add_noise(x0, torch.randn(x0.shape, generator=g, dtype=torch.float64), t)
    abar = s.alphas_cumprod[30].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(abar) * 0.7, abs=0.02)
    assert xt.var().item() == pytest.approx(1 - abar, rel=0.03)


def make_oracle(schedule, x0):
    """Returns the exact noise of x_t given the known x_0 (the ideal epsilon-predictor)."""

    def oracle(x_t, steps):
        root = schedule.sqrt_alphas_cumprod_at(steps).to(x_t.dtype).unsqueeze(-1)
        return (x_t - root * x0) / (1 - root ** 2).sqrt()

    return oracle


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
