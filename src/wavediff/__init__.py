"""wavediff: DiffWave (Kong et al., ICLR 2021) diffusion models for audio synthesis."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Synthesizer", "Vocoder", "__version__"]


def __getattr__(name: str):  # lazy: importing wavediff does not import torch
    if name in ("Vocoder", "Synthesizer"):
        from wavediff import pipelines

        return getattr(pipelines, name)
    raise AttributeError(name)
