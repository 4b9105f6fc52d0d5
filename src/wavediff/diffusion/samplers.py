"""Reverse-process samplers.

A denoiser is any callable ``denoiser(x_t, steps, **cond) -> eps`` with ``x_t`` of shape
``(B, L)``, ``steps`` a ``(B,)`` float tensor of (possibly fractional) 0-based training
steps, returning predicted noise of shape ``(B, L)``.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import torch

from wavediff.diffusion.schedule import SamplingSchedule
from wavediff.diffusion.solvers import Solver


class Denoiser(Protocol):
    def __call__(self, x_t: torch.Tensor, steps: torch.Tensor, **cond: Any) -> torch.Tensor: ...


StepCallback = Callable[[int, torch.Tensor], None]
Estimate = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def estimate_x0(x_t: torch.Tensor, eps: torch.Tensor, gbar: float) -> torch.Tensor:
    """The clean signal the prediction implies: ``(x_t - sqrt(1 - gbar) eps) / sqrt(gbar)``."""
    return (x_t - (1.0 - gbar) ** 0.5 * eps) / gbar ** 0.5


def noise_for_estimate(x_t: torch.Tensor, x0: torch.Tensor, gbar: float) -> torch.Tensor:
    """The inverse of :func:`estimate_x0`: the noise ``(x_t - sqrt(gbar) x0) / sqrt(1 - gbar)`` that
    makes the reverse step move towards ``x0``."""
    return (x_t - gbar ** 0.5 * x0) / (1.0 - gbar) ** 0.5


def noised_start(x0: torch.Tensor, chain: SamplingSchedule, noise: torch.Tensor) -> torch.Tensor:
    """``x_S = sqrt(gbar_S) x0 + sqrt(1 - gbar_S) noise`` at the top of ``chain``: a reverse chain
    started from an estimate of the clean signal (shallow diffusion). ``noise`` is ``z``, or ``sigma z``
    under PriorGrad's prior."""
    gbar = float(chain.alphas_cumprod[-1])
    return gbar ** 0.5 * x0 + (1.0 - gbar) ** 0.5 * noise


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    chain: SamplingSchedule,
    *,
    cond: dict[str, Any] | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    x_start: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    noise_std: torch.Tensor | None = None,
    correct_x0: Estimate | None = None,
    solver: Solver | None = None,
) -> torch.Tensor:
    """Run a reverse chain from x_S ~ N(0, I) down to x_0.

    Ancestral (the default): for s = S..1, ``x <- (x - eta_s / sqrt(1 - gbar_s) * eps(x, t_s)) /
    sqrt(1 - eta_s)``, then ``x <- x + sigma_s z`` for s > 1. With the full chain this is
    Algorithm 2 of DiffWave (sigma_t = sqrt(beta-tilde_t)); with an aligned chain, Appendix B.
    ``solver`` picks DDIM or DPM-Solver++(2M) instead (:mod:`wavediff.diffusion.solvers`).

    Args:
        shape: ``(B, L)`` shape of the output.
        chain: from :func:`~wavediff.diffusion.schedule.full_chain`,
            :func:`~wavediff.diffusion.schedule.align_schedule` or
            :func:`~wavediff.diffusion.schedule.strided_schedule`.
        generator: all randomness (x_S and every z) is drawn from it, on CPU, so the same
            seed gives the same bits on any device. A sequence of ``B`` generators draws
            row ``b`` from generator ``b``: each row then does not depend on its batch.
        x_start: optional x_S instead of drawing it.
        callback: called as ``callback(s, x)`` after each step (s counts down to 1).
        noise_std: ``(B, L)`` PriorGrad's sigma (:mod:`wavediff.diffusion.prior`): x_S and
            every step's noise are scaled by it. ``None``: the standard prior.
        correct_x0: ``correct_x0(s, x0_hat) -> x0' | None``, called at every step with the
            network's estimate of the clean signal ``(B, L)`` (:func:`estimate_x0`); a tensor
            it returns replaces the estimate in the step (GLA-Grad's consistency step), ``None``
            leaves the step as it is.
        solver: the update rule (:class:`~wavediff.diffusion.solvers.Solver`); ``None``: ancestral.
    Returns:
        ``(B, L)`` tensor x_0 (not clipped).
    """
    cond = cond or {}
    std = noise_std.to(device=device, dtype=dtype) if noise_std is not None else None
    if x_start is not None:
        x = x_start.to(device=device, dtype=dtype)
    else:
        x = _normal(shape, generator).to(device=device, dtype=dtype)
        if std is not None:
            x = x * std
    batch = x.shape[0]
    prev_x0 = None
    for step in chain.reverse_steps(solver):
        t = torch.full((batch,), step.t, device=device, dtype=torch.float32)
        eps = denoiser(x, t, **cond).to(x.dtype)
        if correct_x0 is not None:
            x0 = correct_x0(step.number, estimate_x0(x, eps, step.gbar))
            if x0 is not None:
                eps = noise_for_estimate(x, x0.to(x.dtype), step.gbar)
        x0_now = estimate_x0(x, eps, step.gbar) if step.keeps_x0 else None
        x = step.mean(x, eps, prev_x0)
        prev_x0 = x0_now
        if step.adds_noise:
            z = _normal(tuple(x.shape), generator).to(device=device, dtype=dtype)
            x = x + step.sigma * (z if std is None else z * std)
        if callback is not None:
            callback(step.number, x)
    return x


def _normal(shape: tuple[int, ...], generator: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` on CPU; with a sequence of generators, row b from generator b."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}; give one per row")
    return torch.stack([torch.randn(shape[1:], generator=g, dtype=torch.float32) for g in generator])
