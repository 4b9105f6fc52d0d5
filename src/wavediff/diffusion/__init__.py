"""Noise schedules, the training objective and samplers (tensors and callables only)."""
from wavediff.diffusion.objective import diffusion_loss
from wavediff.diffusion.samplers import sample
from wavediff.diffusion.schedule import (
    NoiseSchedule,
    SamplingSchedule,
    align_schedule,
    full_chain,
    linear_schedule,
    sampling_schedule,
    strided_schedule,
)

__all__ = [
    "NoiseSchedule", "SamplingSchedule", "align_schedule", "diffusion_loss", "full_chain",
    "linear_schedule", "sample", "sampling_schedule", "strided_schedule",
]
