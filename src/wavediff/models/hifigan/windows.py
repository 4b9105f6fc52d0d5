"""HiFi-GAN's generator over long mels in windows with an exact overlap.

Every layer of the generator is a convolution, a transposed convolution or a pointwise function,
so an output sample depends only on the mel frames within the generator's reach
(:func:`reach_samples`). A window of frames run with at least that many frames of context on
each side (:func:`context_frames`) gives, in its centre, the samples a single pass over the whole
mel gives; at the mel's ends the window and the single pass see the same zero padding. So
:func:`generate_in_windows` equals one pass up to floating-point reassociation, with memory set
by the window, not by the length of the audio.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from wavediff.config import HiFiGANConfig
from wavediff.errors import WavediffError
from wavediff.models.hifigan.network import HiFiGANGenerator

INPUT_CONV_REACH = 3     # the 7-tap input and output convolutions reach 3 samples each side


def _residual_reach(config: HiFiGANConfig) -> int:
    """Samples each side one multi-receptive-field fusion reaches, at its own rate: the widest of
    its residual blocks (kind 1: a dilated and a plain convolution per dilation; kind 2: one)."""
    reaches = []
    for kernel, dilations in zip(config.resblock_kernels, config.resblock_dilations):
        half = (kernel - 1) // 2
        reaches.append(sum(half * d + (half if config.resblock == 1 else 0) for d in dilations))
    return max(reaches)


def reach_samples(config: HiFiGANConfig) -> int:
    """An upper bound on how far (in output samples, each side) a generator's output sample
    depends on its input: the input convolution's 3 frames, each stage's transposed convolution
    (``ceil(kernel / rate)`` input samples) and residual fusion, the output convolution's 3 samples."""
    hop = config.hop_length
    reach = INPUT_CONV_REACH * hop
    per_sample = hop                       # output samples per sample of the current stage's input
    for rate, kernel in zip(config.upsample_rates, config.upsample_kernels):
        reach += math.ceil(kernel / rate) * per_sample
        per_sample //= rate
        reach += _residual_reach(config) * per_sample
    return reach + INPUT_CONV_REACH


def context_frames(config: HiFiGANConfig) -> int:
    """Mel frames of context each side of a window that make its centre exact (the reach in
    frames, rounded up, plus one for the transposed convolutions' alignment)."""
    return math.ceil(reach_samples(config) / config.hop_length) + 1


def window_bounds(frames: int, window: int, context: int) -> Iterator[tuple[int, int, int, int]]:
    """``(start, end, lo, hi)`` per window: the frames ``[start, end)`` it produces and the frames
    ``[lo, hi)`` it reads. Every window reads the same ``window + 2 * context`` frames (or the
    whole mel when it is shorter): at the mel's ends the read span is shifted inwards rather than
    cut, so that the generator always sees one input shape (a CPU library builds its kernels once
    per shape) and every produced frame keeps at least ``context`` frames of context or the mel's
    end on each side."""
    if window < 1 or context < 0:
        raise WavediffError(f"window={window} frames must be >= 1 and context={context} >= 0")
    span = min(frames, window + 2 * context)
    for start in range(0, frames, window):
        end = min(frames, start + window)
        lo = min(max(0, start - context), frames - span)
        yield start, end, lo, lo + span


def generate_in_windows(generator: HiFiGANGenerator, mel: torch.Tensor, window_frames: int) -> torch.Tensor:
    """Mel ``(n_mels, F)`` -> audio ``(F * hop,)`` through ``generator`` in windows of
    ``window_frames`` frames, each with :func:`context_frames` of context; the audio is written
    into one buffer window by window. Equal to ``generator(mel[None])[0]`` within float rounding.
    Runs in the caller's grad and autocast mode; the buffer is fp32."""
    hop = generator.hop_length
    frames = mel.shape[-1]
    out = torch.empty(frames * hop, dtype=torch.float32, device=mel.device)
    context = context_frames(generator.config)
    for start, end, lo, hi in window_bounds(frames, window_frames, context):
        audio = generator(mel[None, :, lo:hi])[0]
        out[start * hop:end * hop] = audio[(start - lo) * hop:(end - lo) * hop].float()
    return out
