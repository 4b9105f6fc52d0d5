"""Loudness normalisation of training and input audio (``data.normalize``).

PriorGrad, FreGrad and HiFi-GAN scale every training utterance to a peak of 0.95 before
computing its mel; lmnt-com/diffwave does not. Quiet corpora (digits16k's clips have an RMS
of 0.042) otherwise put most of the diffusion chain below the noise.
"""
from __future__ import annotations

import numpy as np
import torch

PEAK_LEVEL = 0.95   # PriorGrad / FreGrad / HiFi-GAN


def peak_gain(audio: np.ndarray | torch.Tensor, level: float = PEAK_LEVEL) -> float:
    """The factor that brings ``audio``'s largest absolute sample to ``level``; 1 for silence."""
    peak = float(np.max(np.abs(np.asarray(audio, dtype=np.float32)))) if len(audio) else 0.0
    return level / peak if peak > 0 else 1.0
