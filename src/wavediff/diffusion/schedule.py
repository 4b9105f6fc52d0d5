"""Noise schedules: the training chain and the inference chains derived from it.

Notation (DiffWave, Kong et al. 2021): ``betas[n] = beta_{n+1}`` for the 0-based step
index ``n = t - 1``; ``alphas = 1 - betas``; ``alphas_cumprod[n] = prod_{s<=n} alphas[s]``.
The network sees the 0-based index ``n`` (fractional for the fast sampler).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from wavediff.diffusion.solvers import ReverseStep, Solver
from wavediff.errors import WavediffError


@dataclass(frozen=True)
class NoiseSchedule:
    """The training chain: numbers only, float64 tensors of shape ``(T,)``."""

    betas: torch.Tensor

    def __post_init__(self) -> None:
        b = self.betas
        if b.dim() != 1 or b.numel() < 1:
            raise WavediffError(f"betas must be a non-empty 1-D tensor, got shape {tuple(b.shape)}")
        if not bool(torch.all((b > 0) & (b < 1))):
            raise WavediffError("every beta must lie in (0, 1)")
        object.__setattr__(self, "betas", b.to(torch.float64))

    @property
    def num_steps(self) -> int:
        return int(self.betas.numel())

    @property
    def alphas(self) -> torch.Tensor:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(self.alphas, dim=0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) in closed form.

        Args:
            x0: ``(B, ...)`` clean signals.
            noise: standard normal noise of the same shape.
            steps: ``(B,)`` integer 0-based step indices.
        """
        abar = self.alphas_cumprod.to(x0.device)[steps].to(x0.dtype)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return abar.sqrt().view(shape) * x0 + (1.0 - abar).sqrt().view(shape) * noise

    def noise_levels(self, steps: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """WaveGrad's continuous training levels: ``sqrt(abar)`` drawn between two adjacent steps,
        ``sqrt(abar_n) + position * (sqrt(abar_{n-1}) - sqrt(abar_n))`` (``abar_{-1} = 1``).

        Args:
            steps: ``(B,)`` integer 0-based steps ``n``.
            position: ``(B,)`` in [0, 1] (uniform for training).
        Returns:
            ``(B,)`` float64 levels in ``[sqrt(abar_{T-1}), 1]``.
        """
        root = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod.sqrt()]).to(steps.device)
        lo, hi = root[steps + 1], root[steps]
        return lo + position.to(device=steps.device, dtype=torch.float64) * (hi - lo)

    def add_noise_at_levels(self, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """``l x0 + sqrt(1 - l^2) noise`` for levels ``l = sqrt(abar)`` ``(B,)``."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        lv = levels.to(device=x0.device, dtype=torch.float64)
        return lv.to(x0.dtype).view(shape) * x0 + (1.0 - lv * lv).sqrt().to(x0.dtype).view(shape) * noise

    def sqrt_alphas_cumprod_at(self, t: torch.Tensor) -> torch.Tensor:
        """sqrt(abar) linearly interpolated at fractional 0-based steps ``t``."""
        table = self.alphas_cumprod.sqrt().to(t.device)
        t = t.to(torch.float64).clamp(0, self.num_steps - 1)
        lo = t.floor().long()
        hi = torch.clamp(lo + 1, max=self.num_steps - 1)
        w = t - lo.to(t.dtype)
        return table[lo] * (1 - w) + table[hi] * w


def linear_schedule(num_steps: int, beta_start: float, beta_end: float) -> NoiseSchedule:
    """beta linear from ``beta_start`` to ``beta_end`` over ``num_steps`` steps."""
    if num_steps < 1:
        raise WavediffError(f"num_steps={num_steps} must be >= 1")
    return NoiseSchedule(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))


@dataclass(frozen=True)
class SamplingSchedule:
    """An inference chain of S steps, listed from s = 1 (least noise) to s = S.

    Attributes (float64, shape ``(S,)``):
        etas: the variance schedule eta_s (equal to the betas for the full chain).
        alphas_cumprod: gamma-bar_s = prod_{r<=s} (1 - eta_r).
        sigmas: sqrt(eta-tilde_s), the noise added after step s (0 for s = 1).
        timesteps: the 0-based (possibly fractional) training step each inference step is
            aligned to; it is what the denoiser is called with.
    """

    etas: torch.Tensor
    alphas_cumprod: torch.Tensor
    sigmas: torch.Tensor
    timesteps: torch.Tensor

    @property
    def num_steps(self) -> int:
        return int(self.etas.numel())

    def reverse_steps(self, solver: Solver | None = None) -> tuple[ReverseStep, ...]:
        """The chain's steps in the order a sampler runs them, s = S down to 1, under ``solver``'s
        update rule (:mod:`wavediff.diffusion.solvers`; default: ancestral)."""
        return (solver or Solver()).steps(self)


def at_noise_levels(chain: SamplingSchedule) -> SamplingSchedule:
    """The same chain calling the denoiser with the noise level sqrt(gamma-bar_s) of each step
    instead of a training step (a model trained on continuous levels, ``diffusion.noise_input='level'``)."""
    return SamplingSchedule(chain.etas, chain.alphas_cumprod, chain.sigmas, chain.alphas_cumprod.sqrt())


def lowest_steps(chain: SamplingSchedule, count: int) -> SamplingSchedule:
    """The last ``count`` steps of a reverse chain (s = 1..count, the least noisy): the chain that
    a start at step ``count`` runs. Every value is the full chain's, so the steps are unchanged."""
    if not 1 <= count <= chain.num_steps:
        raise WavediffError(f"a start {count} steps before the end does not fit a chain of {chain.num_steps} "
                            f"steps; choose 1..{chain.num_steps}")
    return SamplingSchedule(chain.etas[:count].clone(), chain.alphas_cumprod[:count].clone(),
                            chain.sigmas[:count].clone(), chain.timesteps[:count].clone())


def _sigmas(etas: torch.Tensor, gbar: torch.Tensor) -> torch.Tensor:
    prev = torch.cat([torch.ones(1, dtype=gbar.dtype), gbar[:-1]])
    tilde = (1.0 - prev) / (1.0 - gbar) * etas
    return tilde.sqrt()


def full_chain(schedule: NoiseSchedule) -> SamplingSchedule:
    """Algorithm 2: every training step, sigma_t = sqrt(beta-tilde_t)."""
    etas = schedule.betas.clone()
    gbar = schedule.alphas_cumprod
    return SamplingSchedule(etas, gbar, _sigmas(etas, gbar),
                            torch.arange(schedule.num_steps, dtype=torch.float64))


def align_schedule(schedule: NoiseSchedule, etas: Sequence[float] | torch.Tensor) -> SamplingSchedule:
    """The fast sampler of the paper's Appendix B for a user variance schedule ``etas``.

    Each step s is aligned to the fractional training step where sqrt(abar) crosses
    sqrt(gamma-bar_s): with 1-based t such that sqrt(abar_{t+1}) <= sqrt(gbar_s) <= sqrt(abar_t),
    ``t_align = t + (sqrt(abar_t) - sqrt(gbar_s)) / (sqrt(abar_t) - sqrt(abar_{t+1}))``,
    returned 0-based (``t_align - 1``).

    Raises:
        WavediffError: an eta outside (0, 1), or a noise level outside the range the
            training chain covers (gbar_s above abar_1 or below abar_T).
    """
    eta = torch.as_tensor(etas, dtype=torch.float64).flatten()
    if eta.numel() < 1:
        raise WavediffError("the inference schedule is empty; give at least one eta")
    if not bool(torch.all((eta > 0) & (eta < 1))):
        raise WavediffError(f"every eta must lie in (0, 1); got {eta.tolist()}")
    gbar = torch.cumprod(1.0 - eta, dim=0)
    root_abar = schedule.alphas_cumprod.sqrt()
    root_gbar = gbar.sqrt()
    T = schedule.num_steps
    tol = 1e-9
    aligned = []
    for s, rg in enumerate(root_gbar.tolist()):
        if rg > root_abar[0].item() + tol:
            raise WavediffError(
                f"inference step {s + 1} (eta={eta[s].item():g}) has less noise (gamma-bar={rg ** 2:.6g}) "
                f"than the first training step (alpha-bar_1={root_abar[0].item() ** 2:.6g}); "
                f"make the first eta at least beta_1={schedule.betas[0].item():g}"
            )
        if rg < root_abar[-1].item() - tol:
            raise WavediffError(
                f"inference schedule cannot be aligned: after step {s + 1} gamma-bar={rg ** 2:.6g} "
                f"is below alpha-bar_T={root_abar[-1].item() ** 2:.6g}, the most noise the model was "
                f"trained on (T={T}); use smaller etas"
            )
        if abs(rg - root_abar[-1].item()) <= tol:
            aligned.append(float(T - 1))
            continue
        # 0-based n with root_abar[n] >= rg > root_abar[n + 1]
        n = int(torch.searchsorted(-root_abar, torch.tensor([-rg], dtype=torch.float64), right=True).item()) - 1
        n = min(max(n, 0), T - 2) if T > 1 else 0
        if T == 1:
            aligned.append(0.0)
            continue
        frac = (root_abar[n].item() - rg) / (root_abar[n].item() - root_abar[n + 1].item())
        aligned.append(n + frac)
    return SamplingSchedule(eta, gbar, _sigmas(eta, gbar), torch.tensor(aligned, dtype=torch.float64))


def strided_schedule(schedule: NoiseSchedule, num_steps: int) -> SamplingSchedule:
    """An S-step chain through S evenly spaced training steps (integer alignment).

    ``eta_s = 1 - abar[n_s] / abar[n_{s-1}]`` so that gamma-bar_s equals abar at the chosen
    step; the last chosen step is T - 1, so sampling starts at the training chain's noise level.
    """
    T = schedule.num_steps
    if not 1 <= num_steps <= T:
        raise WavediffError(f"steps={num_steps} must be between 1 and T={T}")
    idx = torch.linspace(0, T - 1, num_steps, dtype=torch.float64).round().long().unique()
    abar = schedule.alphas_cumprod[idx]
    prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    etas = 1.0 - abar / prev
    return SamplingSchedule(etas, abar, _sigmas(etas, abar), idx.to(torch.float64))


def sampling_schedule(schedule: NoiseSchedule, steps: int, fast_etas: Sequence[float] = ()) -> SamplingSchedule:
    """The chain for ``steps`` inference steps.

    ``steps == T``: the full chain (Algorithm 2). ``steps == len(fast_etas)``: the paper's
    fast schedule (Appendix B). Any other ``1 <= steps < T``: :func:`strided_schedule`.
    """
    T = schedule.num_steps
    if steps == T:
        return full_chain(schedule)
    if fast_etas and steps == len(fast_etas):
        return align_schedule(schedule, fast_etas)
    if not 1 <= steps < T:
        raise WavediffError(f"steps={steps} is not allowed: use 1..{T} (T={T} is the full chain)")
    return strided_schedule(schedule, steps)


