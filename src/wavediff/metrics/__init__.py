"""Objective metrics."""
from wavediff.metrics.spectral import log_mel_l1, multi_resolution_stft_distance

__all__ = ["log_mel_l1", "multi_resolution_stft_distance"]
