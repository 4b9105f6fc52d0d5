"""wavediff: DiffWave (Kong et al., ICLR 2021) diffusion models for audio synthesis."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Vocoder", "__version__"]


def __getattr__(name: str):  # lazy: importing wavediff does not import torch
    if name == "Vocoder":
        from wavediff.pipelines import Vocoder

        return Vocoder
    raise AttributeError(name)
