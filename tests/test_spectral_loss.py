"""The optional multi-resolution STFT loss on the network's estimate of the clean signal
(``train.spectral_loss_weight``).

References: closed forms (a doubled signal, an oracle and a zero denoiser) and the
evaluation's own MR-STFT distance."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.config import load_config
from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.schedule import linear_schedule
from wavediff.errors import WavediffError


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


def test_a_negative_spectral_weight_is_refused():
    with pytest.raises(WavediffError, match="spectral_loss_weight"):
        load_config("tiny", ["train.spectral_loss_weight=-0.1"])
