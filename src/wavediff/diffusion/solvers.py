"""The update rules of the reverse chain: ancestral (DDPM), DDIM and DPM-Solver++ (2M).

Every rule is written as one affine step over a chain of noise levels (the chain's
``gamma-bar_S > ... > gamma-bar_1``, then ``gamma-bar_0 = 1``)::

    x_{s-1} = x_coef * x_s + eps_coef * eps(x_s) + prev_coef * x0_{s+1} + sigma * z

with ``x0_{s+1}`` the clean-signal estimate of the step run before (DPM-Solver++'s history) and
``z`` standard normal noise (PriorGrad: ``sigma_p z``). The coefficients are plain numbers, so
:func:`~wavediff.diffusion.samplers.sample`, the inference engine and its streaming chain apply
the same rule through :meth:`ReverseStep.mean`.

With ``alpha = sqrt(gbar)``, ``sd = sqrt(1 - gbar)`` and the step from level ``t`` to ``n``:

- ``ancestral``: Algorithm 2 of DiffWave (Appendix B on an aligned chain):
  ``(x - eta_s / sd_t * eps) / sqrt(1 - eta_s) + sigma_s z``.
- ``ddim`` (Song et al. 2021, eq. 12): ``alpha_n x0 + sqrt(1 - gbar_n - sigma^2) eps + sigma z``
  with ``sigma = ddim_eta * sqrt((1 - gbar_n) / (1 - gbar_t) * (1 - gbar_t / gbar_n))``:
  deterministic at ``ddim_eta = 0``, the ancestral chain at ``ddim_eta = 1``.
- ``dpm-solver`` (DPM-Solver++(2M), Lu et al. 2022, Algorithm 2): in the log-SNR
  ``lambda = log(alpha / sd)``, ``h = lambda_n - lambda_t``, ``r = h_prev / h``:
  ``x_n = sd_n / sd_t x - alpha_n (e^{-h} - 1) ((1 + 1/(2r)) x0_t - 1/(2r) x0_prev)``; the first
  step has no history (first order, ``r -> inf``) and the last one, to ``gbar_0 = 1`` where
  ``h`` is infinite, is first order too: it returns the clean estimate (``lower_order_final``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from wavediff.config import SOLVER_METHODS
from wavediff.errors import WavediffError

if TYPE_CHECKING:
    from wavediff.diffusion.schedule import SamplingSchedule

__all__ = ["SOLVER_METHODS", "ReverseStep", "Solver"]


@dataclass(frozen=True)
class ReverseStep:
    """One step of a reverse chain, the single place its update is written (see the module)::

        x_{s-1} = x_coef * x + eps_coef * eps + prev_coef * x0_prev + sigma * z

    Attributes:
        index: 0-based position in the chain's arrays (``s - 1``); index 0 is the last step.
        t: what the denoiser is called with at this step (the chain's ``timesteps[index]``).
        x_coef, eps_coef: the update's weights on the state and on the network's noise estimate.
        sigma: the standard deviation of the noise added after the step (0: none drawn).
        gbar: ``gbar_s``, for the clean-signal estimate.
        prev_coef: the weight on the previous step's clean estimate (0 but for DPM-Solver++).
        keeps_x0: the next step run needs this step's clean estimate (``prev_coef`` there is not 0).
    """

    index: int
    t: float
    x_coef: float
    eps_coef: float
    sigma: float
    gbar: float
    prev_coef: float = 0.0
    keeps_x0: bool = False

    @property
    def number(self) -> int:
        """``s``, 1-based: S for the first step a sampler runs, 1 for the last."""
        return self.index + 1

    @property
    def adds_noise(self) -> bool:
        """The step draws ``z`` (ancestral: every step but the last; DDIM at ``ddim_eta = 0`` and
        DPM-Solver++: none)."""
        return self.sigma > 0.0

    @property
    def uses_x0_history(self) -> bool:
        return self.prev_coef != 0.0

    def mean(self, x: torch.Tensor, eps: torch.Tensor, prev_x0: torch.Tensor | None = None) -> torch.Tensor:
        """The update without its noise, as a new tensor, shapes as given. ``prev_x0`` is needed
        exactly when :attr:`uses_x0_history`."""
        return self.mean_(x.clone(), eps, prev_x0)

    def mean_(self, x: torch.Tensor, eps: torch.Tensor, prev_x0: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`mean` written into ``x``."""
        x.mul_(self.x_coef).add_(eps, alpha=self.eps_coef)
        if self.uses_x0_history:
            if prev_x0 is None:
                raise WavediffError(f"step {self.number} of a multistep solver needs the previous clean estimate")
            x.add_(prev_x0, alpha=self.prev_coef)
        return x


@dataclass(frozen=True)
class Solver:
    """Which update rule a reverse chain runs (see the module): ``method`` one of
    :data:`SOLVER_METHODS`; ``ddim_eta`` in [0, 1] scales DDIM's noise (ignored by the others)."""

    method: str = "ancestral"
    ddim_eta: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in SOLVER_METHODS:
            raise WavediffError(f"sampler method {self.method!r} is not one of {list(SOLVER_METHODS)}")
        if not 0.0 <= self.ddim_eta <= 1.0:
            raise WavediffError(f"ddim_eta={self.ddim_eta} must lie in [0, 1]")

    @property
    def is_stochastic(self) -> bool:
        return self.method == "ancestral" or (self.method == "ddim" and self.ddim_eta > 0)

    def steps(self, chain: "SamplingSchedule") -> tuple[ReverseStep, ...]:
        """The chain's steps in the order a sampler runs them: s = S down to 1."""
        gbars = chain.alphas_cumprod.tolist()
        timesteps = chain.timesteps.tolist()
        S = len(gbars)
        if self.method == "ancestral":
            etas, sigmas = chain.etas.tolist(), chain.sigmas.tolist()
            raw = []
            for i in range(S):
                scale = 1.0 / math.sqrt(1.0 - etas[i])
                raw.append((scale, -etas[i] / math.sqrt(1.0 - gbars[i]) * scale, 0.0, sigmas[i]))
        elif self.method == "ddim":
            raw = [_ddim(gbars[i], gbars[i - 1] if i > 0 else 1.0, self.ddim_eta) for i in range(S)]
        else:
            raw = _dpm_solver_2m(gbars)
        steps = []
        for i in range(S - 1, -1, -1):
            x_coef, eps_coef, prev_coef, sigma = raw[i]
            keeps = i > 0 and raw[i - 1][2] != 0.0
            steps.append(ReverseStep(i, timesteps[i], x_coef, eps_coef, sigma, gbars[i], prev_coef, keeps))
        return tuple(steps)


def _ddim(g_t: float, g_n: float, eta: float) -> tuple[float, float, float, float]:
    a_t, s_t, a_n = math.sqrt(g_t), math.sqrt(1.0 - g_t), math.sqrt(g_n)
    sigma = eta * math.sqrt(max((1.0 - g_n) / (1.0 - g_t) * (1.0 - g_t / g_n), 0.0))
    direction = math.sqrt(max(1.0 - g_n - sigma * sigma, 0.0))
    return a_n / a_t, -a_n * s_t / a_t + direction, 0.0, sigma


def _dpm_solver_2m(gbars: list[float]) -> list[tuple[float, float, float, float]]:
    """(x_coef, eps_coef, prev_coef, 0) for chain index i = 0..S-1 (run from S-1 down)."""
    S = len(gbars)
    lam = [0.5 * math.log(g / (1.0 - g)) for g in gbars]
    raw: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 0.0)] * S
    for i in range(S - 1, -1, -1):
        a_t, s_t = math.sqrt(gbars[i]), math.sqrt(1.0 - gbars[i])
        if i == 0:   # to gbar_0 = 1: the clean estimate itself
            raw[i] = (1.0 / a_t, -s_t / a_t, 0.0, 0.0)
            continue
        a_n, s_n = math.sqrt(gbars[i - 1]), math.sqrt(1.0 - gbars[i - 1])
        h = lam[i - 1] - lam[i]
        if h <= 0:
            raise WavediffError(f"the chain's noise must fall at every step; gamma-bar {gbars[i - 1]:.6g} after "
                                f"{gbars[i]:.6g}")
        k = -a_n * math.expm1(-h)
        if i == S - 1:
            w_cur, w_prev = 1.0, 0.0
        else:
            r = (lam[i] - lam[i + 1]) / h
            w_cur, w_prev = 1.0 + 0.5 / r, -0.5 / r
        raw[i] = (s_n / s_t + k * w_cur / a_t, -k * w_cur * s_t / a_t, k * w_prev, 0.0)
    return raw
