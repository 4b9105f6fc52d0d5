"""The precision vocabulary, spelled once: each numeric format's name, which job takes which,
and what ``auto`` means on a device.

==========  ===========================================================================
``auto``    bf16 where the hardware computes it natively (a CPU with AVX512-BF16 or AMX,
            CUDA with bf16 support), else fp32
``fp32``    the reference
``bf16``    bfloat16 GEMMs, convolutions and activations; the diffusion state and its
            update, the loss, the optimiser and the master weights stay fp32
``fp16``    float16 autocast with loss scaling: training on CUDA only
``int8``    the vocoder engine only: as bf16, with the dilated convolutions and the
            residual/skip projections in int8 arithmetic (x86 CPU)
==========  ===========================================================================

The CLI's ``--precision`` choices, the config's check of ``train.precision`` and the engine's
and pipelines' checks all read the tuples below. Weight storage is a separate axis
(:data:`WEIGHT_FORMATS`): ``int8`` weights round the residual stack to per-channel int8 at
any compute precision.

This module does not import torch at load time, so the config stays torch-free.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from wavediff.errors import WavediffError

if TYPE_CHECKING:
    import torch

AUTO = "auto"
TRAINING_PRECISIONS: tuple[str, ...] = (AUTO, "fp32", "bf16", "fp16")
"""``train.precision`` and ``wavediff train --precision``."""
ENGINE_PRECISIONS: tuple[str, ...] = (AUTO, "fp32", "bf16", "int8")
"""The vocoder engine: :class:`~wavediff.pipelines.Vocoder`, ``vocode``, ``evaluate``."""
GENERATION_PRECISIONS: tuple[str, ...] = (AUTO, "fp32", "bf16")
"""Class-conditional and unconditional sampling (autocast): ``generate``, ``evaluate-generation``."""
WEIGHT_FORMATS: tuple[str, ...] = ("float", "int8")
"""How the engine stores the residual stack's weights (``--weights``)."""

_ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 2}   # int8 keeps bf16 activations


def check_precision(precision: str, allowed: Sequence[str], what: str = "precision") -> str:
    """``precision`` if it is one of ``allowed``, else a :class:`WavediffError` naming both."""
    if precision not in allowed:
        raise WavediffError(f"{what}={precision!r} is not allowed; choose one of {list(allowed)}")
    return precision


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_precision(precision: str, device: "torch.device | str",
                      allowed: Sequence[str] = ENGINE_PRECISIONS) -> str:
    """``"auto"`` -> ``"bf16"`` where the hardware has it (CUDA with bf16, or a CPU with
    AVX512-BF16/AMX), else ``"fp32"``; any other name in ``allowed`` is returned as given."""
    import torch

    check_precision(precision, allowed)
    if precision != AUTO:
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def compute_dtype(precision: str) -> "torch.dtype":
    """The dtype a resolved precision computes in (``int8`` activations are bfloat16)."""
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.bfloat16}
    check_precision(precision, tuple(dtypes))
    return dtypes[precision]


def element_bytes(precision: str) -> int:
    """Bytes of one activation element at a resolved precision (for memory planning)."""
    check_precision(precision, tuple(_ELEMENT_BYTES))
    return _ELEMENT_BYTES[precision]
