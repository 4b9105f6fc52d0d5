"""wavediff.diffusion.solvers: DDIM and DPM-Solver++(2M) against closed forms.

References: an oracle denoiser (the exact noise of x_t given x_0: every rule lands on x_0); the
ancestral chain (DDIM at eta = 1 is the same Markov chain); and a Gaussian data distribution
N(mu, sd^2), whose exact noise prediction and exact probability-flow map are known in closed form:
x_T - sqrt(gbar_T) mu maps to x_0 - mu scaled by sd / sqrt(gbar_T sd^2 + 1 - gbar_T)."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import SamplingSchedule, align_schedule, full_chain, linear_schedule, strided_schedule
from wavediff.diffusion.solvers import SOLVER_METHODS, Solver
from wavediff.errors import WavediffError

from helpers import BASE_ETAS

MU, SD, TOP = 0.3, 0.5, 0.05


def level_chain(n: int, top: float = TOP, bottom: float = 1 - 1e-8) -> SamplingSchedule:
    """``n`` noise levels evenly spaced in log-SNR; the denoiser is called with gbar itself."""
    lam = torch.linspace(0.5 * math.log(bottom / (1 - bottom)), 0.5 * math.log(top / (1 - top)), n,
                         dtype=torch.float64)
    g = torch.sigmoid(2 * lam)
    prev = torch.cat([torch.ones(1, dtype=g.dtype), g[:-1]])
    etas = 1 - g / prev
    tilde = ((1 - prev) / (1 - g) * etas).sqrt()
    return SamplingSchedule(etas, g, tilde, g.clone())


def gaussian_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[eps | x_t] for data N(MU, SD^2) at gbar = t."""
    g = t.to(x.dtype).unsqueeze(-1)
    a, s = g.sqrt(), (1 - g).sqrt()
    return s * (x - a * MU) / (a * a * SD * SD + s * s)


def flow_gain(solver: Solver, n: int) -> float:
    """The slope of the (affine) deterministic sampler's map x_T -> x_0 on the Gaussian data."""
    x = torch.tensor([[math.sqrt(TOP) * MU, math.sqrt(TOP) * MU + 1]], dtype=torch.float64)
    out = sample(gaussian_eps, (1, 2), level_chain(n), x_start=x, dtype=torch.float64, solver=solver)
    assert abs(out[0, 0].item() - MU) < 1e-7          # the data mean maps onto itself
    return (out[0, 1] - out[0, 0]).item()


def test_deterministic_solvers_converge_at_their_order_to_the_exact_flow():
    exact = SD / math.sqrt(TOP * SD * SD + 1 - TOP)
    ddim = [abs(flow_gain(Solver("ddim"), n) - exact) for n in (16, 32, 64)]
    dpm = [abs(flow_gain(Solver("dpm-solver"), n) - exact) for n in (16, 32, 64)]
    # first order: the error halves with twice the steps; second order: it quarters
    assert 1.8 < ddim[0] / ddim[1] < 2.2 and 1.8 < ddim[1] / ddim[2] < 2.2
    assert dpm[1] / dpm[2] > 3.5
    assert dpm[2] < ddim[2] / 20


@pytest.mark.parametrize("method", SOLVER_METHODS)
@pytest.mark.parametrize("kind", ["full", "fast", "strided3", "one"])
def test_every_rule_lands_on_x0_under_an_oracle(method, kind):
    s = linear_schedule(50, 1e-4, 0.05)
    chain = {"full": full_chain(s), "fast": align_schedule(s, BASE_ETAS), "strided3": strided_schedule(s, 3),
             "one": strided_schedule(s, 1)}[kind]
    x0 = torch.sin(torch.linspace(0, 20, 300, dtype=torch.float64)).repeat(2, 1) * 0.5

    def oracle(x_t, steps):
        root = s.sqrt_alphas_cumprod_at(steps).to(x_t.dtype).unsqueeze(-1)
        return (x_t - root * x0) / (1 - root ** 2).sqrt()

    out = sample(oracle, x0.shape, chain, generator=torch.Generator().manual_seed(2), dtype=torch.float64,
                 solver=Solver(method, ddim_eta=0.5))
    torch.testing.assert_close(out, x0, atol=1e-8, rtol=0)


def test_ddim_at_eta_one_is_the_ancestral_chain():
    s = linear_schedule(50, 1e-4, 0.05)
    for chain in (align_schedule(s, BASE_ETAS), full_chain(s)):
        def denoiser(x, t):
            return torch.tanh(x) * (0.3 + t.unsqueeze(-1) / 100)

        ref = sample(denoiser, (2, 64), chain, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        out = sample(denoiser, (2, 64), chain, generator=torch.Generator().manual_seed(5), dtype=torch.float64,
                     solver=Solver("ddim", ddim_eta=1.0))
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)


def test_ddim_noise_follows_its_eta_closed_form():
    chain = level_chain(5)
    g = chain.alphas_cumprod.tolist()
    steps = Solver("ddim", ddim_eta=0.4).steps(chain)
    assert [st.number for st in steps] == [5, 4, 3, 2, 1]
    for st in steps[:-1]:
        gt, gn = g[st.index], g[st.index - 1]
        assert st.sigma == pytest.approx(0.4 * math.sqrt((1 - gn) / (1 - gt) * (1 - gt / gn)), rel=1e-12)
    assert steps[-1].sigma == 0 and not steps[-1].adds_noise
    assert not any(st.adds_noise for st in Solver("ddim").steps(chain))
    assert not Solver("ddim").is_stochastic and Solver("ddim", 0.1).is_stochastic


def test_dpm_solver_uses_the_previous_estimate_but_not_at_its_ends():
    steps = Solver("dpm-solver").steps(level_chain(6))
    assert [st.uses_x0_history for st in steps] == [False, True, True, True, True, False]
    assert [st.keeps_x0 for st in steps] == [True, True, True, True, False, False]
    # a deterministic rule draws no noise: the generator does not matter once x_S is given
    x = torch.randn(1, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = sample(gaussian_eps, (1, 32), level_chain(6), x_start=x, dtype=torch.float64,
               generator=torch.Generator().manual_seed(1), solver=Solver("dpm-solver"))
    b = sample(gaussian_eps, (1, 32), level_chain(6), x_start=x, dtype=torch.float64,
               generator=torch.Generator().manual_seed(9), solver=Solver("dpm-solver"))
    assert torch.equal(a, b)


def test_solver_refuses_unknown_methods_and_etas():
    with pytest.raises(WavediffError, match="not one of"):
        Solver("heun")
    with pytest.raises(WavediffError, match=r"\[0, 1\]"):
        Solver("ddim", ddim_eta=1.5)
