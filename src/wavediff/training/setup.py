"""What ``train.precision='auto'`` and ``train.implementation='auto'`` mean on this machine.

``precision``: ``auto`` is bf16 where the hardware computes it natively (a CPU with
AVX512-BF16 or AMX, CUDA with bf16 support) and fp32 elsewhere, logged in one line; ``fp32``
forces the reference precision. bf16 runs the network's GEMMs, convolutions and saved
activations in bfloat16 (autocast); the loss, the optimizer, the master weights and the
EMA stay fp32.

``implementation``: ``auto`` is ``fused`` on a CPU (:mod:`wavediff.models.diffwave.fused`: measured
several times faster there, see ``benchmarks/train_speed.py``) and ``reference`` on CUDA, where
cuDNN runs the reference modules and the fused path has not been measured.

Both are resolved once when a run starts and written into the run's config, so a resumed run
keeps the precision and implementation it started with, on any machine.
"""
from __future__ import annotations

import dataclasses
import logging

import torch

from wavediff.config import RunConfig
from wavediff.precision import AUTO, TRAINING_PRECISIONS, resolve_precision

log = logging.getLogger(__name__)


def resolve_training_precision(precision: str, device: torch.device) -> str:
    """``'auto'`` -> ``'bf16'`` or ``'fp32'`` for ``device`` (one log line when bf16 is not to be had);
    other values are returned as given."""
    if precision != "auto":
        return precision
    chosen = resolve_precision(AUTO, device, TRAINING_PRECISIONS)
    if chosen != "bf16":
        what = "this CPU has no AVX512-BF16 or AMX" if device.type == "cpu" else f"{device} has no bf16 support"
        log.info("train.precision=auto: %s, so training runs in fp32", what)
    return chosen


def resolve_training_implementation(implementation: str, device: torch.device) -> str:
    """``'auto'`` -> ``'fused'`` on a CPU, ``'reference'`` elsewhere; other values as given."""
    if implementation != "auto":
        return implementation
    return "fused" if device.type == "cpu" else "reference"


def resolve_training_setup(config: RunConfig, device: torch.device) -> RunConfig:
    """``config`` with ``train.precision`` and ``train.implementation`` resolved for ``device``."""
    train = config.train
    resolved = dataclasses.replace(train, precision=resolve_training_precision(train.precision, device),
                                   implementation=resolve_training_implementation(train.implementation, device))
    return dataclasses.replace(config, train=resolved)
