"""Noise schedules, the training objective and samplers (tensors and callables only)."""
from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.solvers import Solver
from wavediff.diffusion.schedule import (
    NoiseSchedule,
    SamplingSchedule,
    align_schedule,
    at_noise_levels,
    full_chain,
    linear_schedule,
    sampling_schedule,
    strided_schedule,
)

__all__ = [
    "NoiseSchedule", "SamplingSchedule", "Solver", "align_schedule", "at_noise_levels", "diffusion_loss", "full_chain",
    "linear_schedule", "sample", "sampling_schedule", "strided_schedule",
]
