"""Mu-law companding (ITU-T G.711's continuous form) and its quantisation to classes, the input
and target encoding of WaveNet's softmax output."""
from __future__ import annotations

import math

import torch


def mulaw_compress(x: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """``sign(x) ln(1 + mu |x|) / ln(1 + mu)`` with ``mu = channels - 1``; ``x`` in [-1, 1] (clipped)."""
    mu = channels - 1
    x = x.clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mulaw_expand(y: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """The inverse of :func:`mulaw_compress`: ``sign(y) ((1 + mu) ** |y| - 1) / mu``."""
    mu = channels - 1
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


def mulaw_encode(x: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Audio in [-1, 1] -> int64 classes ``0 .. channels - 1``: the companded value's uniform
    quantisation, ``round((y + 1) / 2 * mu)`` (0 maps to ``mu // 2`` rounded up, 1 to ``mu``)."""
    mu = channels - 1
    return torch.floor((mulaw_compress(x, channels) + 1.0) / 2.0 * mu + 0.5).long().clamp(0, mu)


def mulaw_decode(q: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Classes -> float audio: the class's companded level ``2 q / mu - 1``, expanded."""
    mu = channels - 1
    return mulaw_expand(2.0 * q.float() / mu - 1.0, channels)
