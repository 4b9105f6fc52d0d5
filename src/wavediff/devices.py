"""Choosing the compute device, once, at the edge; naming the machine for reports."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from wavediff.errors import WavediffError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise WavediffError(f"device={name!r} is not allowed; choose auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WavediffError(f"device={name!r} was asked for but CUDA is not available")
    return torch.device(name)


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` on Linux), for reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
