"""Choices the engine's callers make: streaming, one pass or chunks, and the memory each needs
(precision names and ``auto`` live in :mod:`wavediff.precision`)."""
from __future__ import annotations

from wavediff.config import RunConfig
from wavediff.inference.engine import DEFAULT_CACHE_BYTES
from wavediff.inference.mode import EngineMode
from wavediff.precision import element_bytes

DEFAULT_MAX_MEMORY_GB = 4.0
AUTO_CHUNK_SECONDS = 10.0


def one_pass_bytes(total_samples: int, config: RunConfig, precision: str,
                   cache_bytes: int = DEFAULT_CACHE_BYTES) -> int:
    """Memory of a one-pass run over ``total_samples`` rows: the residual streams and skip
    sum (``3C``), the fp32 noise state and prediction, and what the engine keeps of the
    conditioner (every layer's projection, ``layers x 2C``, when that fits in ``cache_bytes``;
    else the upsampled mel, ``n_mels``, when that fits; see
    :meth:`~wavediff.inference.InferenceEngine.conditioner_plan`)."""
    m = config.model
    size = element_bytes(precision)
    projections = total_samples * len(m.dilations) * 2 * m.residual_channels * size
    mel = total_samples * config.mel.n_mels * size
    kept = projections if projections <= cache_bytes else (mel if mel <= cache_bytes else 0)
    return total_samples * (3 * m.residual_channels * size + 8) + kept


def engine_mode(chunk_seconds: float | str | None, device_type: str, total_samples: int, config: RunConfig,
                precision: str, max_memory_gb: float = DEFAULT_MAX_MEMORY_GB,
                streaming: bool = True) -> EngineMode:
    """How the engine covers a batch of ``total_samples``.

    Streaming: every step and layer advance together (exact, each conditioner projection
    computed once, bounded memory; the fastest on a CPU), for ``chunk_seconds='stream'`` and
    for ``'auto'`` on a CPU. One pass: for ``chunk_seconds=None`` and for ``'auto'`` on other
    devices (few large kernels suit a GPU) while one pass needs at most ``max_memory_gb``.
    Chunks: windows of ``chunk_seconds``, or of 10 s for ``'auto'`` beyond that memory. ``streaming=False`` (a sampler that needs every sample of a step at
    once) makes ``'auto'`` choose one pass or windows on a CPU too."""
    if chunk_seconds is None:
        return EngineMode.one_pass()
    if chunk_seconds == "stream" or (chunk_seconds == "auto" and device_type == "cpu" and streaming):
        return EngineMode.stream()
    rate = config.mel.sample_rate
    if chunk_seconds == "auto":
        if one_pass_bytes(total_samples, config, precision) <= max_memory_gb * 2 ** 30:
            return EngineMode.one_pass()
        return EngineMode.chunks(int(AUTO_CHUNK_SECONDS * rate))
    return EngineMode.chunks(max(1, int(round(float(chunk_seconds) * rate))))
