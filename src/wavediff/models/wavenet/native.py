"""WaveNet's per-sample step in native code (:file:`wavediff/inference/wavenet_kernels.c`).

:class:`NativeWaveNet` copies a float32 :class:`~wavediff.models.wavenet.network.WaveNet`'s
weights into per-thread panels and runs samples in chunks: per sample, every layer's dilated
convolution over its queue of past inputs, the gate, the residual and skip projections, the
head and the draw, with the threads splitting each layer's output channels and meeting at a spin
barrier. The conditioning's projection onto every layer's gate is computed by torch, one chunk
at a time, as one matrix product (:meth:`NativeWaveNet.conditioning`).

The library is built on first use like the engine's kernels (:func:`wavediff.inference.native.build_library`:
``cc -O3 -march=native -fopenmp``, cached under ``$WAVEDIFF_CACHE``); :func:`load` returns
``None`` where it cannot be built and generation falls back to the torch loop. Draws use the
kernel's own random numbers (xoshiro256+ per batch row, seeded from the caller's generator),
so a seed gives the same audio on every run of the native path, but not the torch path's audio.
"""
from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from wavediff.inference.native import build_library
from wavediff.models.wavenet.network import WaveNet

log = logging.getLogger(__name__)

MAX_THREADS = 16
"""Most threads (roles) one model splits its channels across (the C file's MAX_ROLES)."""

MIN_CHANNELS_PER_THREAD = 32
"""Fewest gate channels (of each half) a thread takes by default: thinner parts cost more in exchanges
between the threads (one per layer per sample) than they save (64 for ``wavenet-mulaw``: at
most 2 threads; 128 for ``wavenet-large``: 4)."""


class WaveNetLibrary:
    """The loaded library with its C signatures declared."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        p, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
        lib.wn_create.argtypes = [i64, i64, p, i64, i64, i64, i64, i64, i64, i64, p, p, p, i64, i64, p, p, f32]
        lib.wn_create.restype = p
        lib.wn_run.argtypes = [p, p, i64, i64, i64, p, p, p, i64]
        lib.wn_run.restype = ctypes.c_int
        lib.wn_free.argtypes = [p]
        lib.wn_free.restype = None
        lib.wn_vectorized.argtypes = []
        lib.wn_vectorized.restype = ctypes.c_int
        self.lib, self.path = lib, path
        self.vectorized = bool(lib.wn_vectorized())


@functools.lru_cache(maxsize=1)
def load() -> WaveNetLibrary | None:
    """The native WaveNet library, built if needed; ``None`` where it cannot be had."""
    target = build_library("wavenet_kernels.c")
    if target is None:
        return None
    try:
        return WaveNetLibrary(target)
    except OSError as err:
        log.warning("native WaveNet kernel unavailable (%s); generating with the torch loop", err)
        return None


def supports(net: WaveNet) -> bool:
    """Whether ``net`` can run natively: float32 weights on the CPU, and the library built."""
    p = next(net.parameters())
    return p.device.type == "cpu" and p.dtype == torch.float32 and load() is not None


class NativeWaveNet:
    """A float32 CPU ``net`` generating ``batch`` rows from ``start (B,)`` inputs natively.

    ``threads`` sets how many parts each layer's channels are split into (default
    ``torch.get_num_threads()``, at most one per :data:`MIN_CHANNELS_PER_THREAD` gate channels). ``seed``: one per row (a row's draws depend on its seed alone, not on the
    rows beside it), or one for all (row ``b`` draws from ``seed + b``). ``temperature`` divides
    the softmax logits (``0``: the most likely class) or scales the logistic's scale (``mol``).
    """

    def __init__(self, net: WaveNet, batch: int, start: torch.Tensor, *, seed: int | Sequence[int] = 0,
                 temperature: float = 1.0, threads: int | None = None) -> None:
        library = load()
        if library is None:
            raise RuntimeError("the native WaveNet kernel could not be built here (see the log); "
                               "generate with implementation='torch'")
        if not supports(net):
            p = next(net.parameters())
            raise ValueError(f"the native kernel runs float32 CPU models, not {p.dtype} on {p.device}")
        cfg = net.config
        self.net, self.batch, self.library = net, batch, library
        if threads is None:
            threads = min(torch.get_num_threads(), max(1, cfg.gate_channels // 2 // MIN_CHANNELS_PER_THREAD))
        self.threads = max(1, min(MAX_THREADS, threads))
        self.gate_width = cfg.gate_channels
        with torch.no_grad():
            if cfg.output == "mulaw":
                embed = net.input.weight.detach().float().contiguous()
            else:
                embed = torch.cat([net.input.weight.detach().reshape(-1), net.input.bias.detach()]).float()
            params = torch.cat([torch.cat([layer.conv.weight.reshape(-1), layer.conv.bias,
                                           layer.residual.weight.reshape(-1), layer.residual.bias,
                                           layer.skip.weight.reshape(-1), layer.skip.bias])
                                for layer in net.layers]).float().contiguous()
            head = torch.cat([net.head[1].weight.reshape(-1), net.head[1].bias,
                              net.head[3].weight.reshape(-1), net.head[3].bias]).float().contiguous()
            cond_weights = [layer.cond.weight[..., 0] for layer in net.layers if layer.cond is not None]
            self.cond_weight = torch.cat(cond_weights).float().contiguous() if cond_weights else None
        dilations = torch.tensor(cfg.dilations, dtype=torch.int64)
        seeds = [seed + b for b in range(batch)] if isinstance(seed, int) else [int(v) for v in seed]
        if len(seeds) != batch:
            raise ValueError(f"{len(seeds)} seeds for a batch of {batch}; give one seed or one per row")
        seed_array = (ctypes.c_uint64 * batch)(*[v & (2 ** 64 - 1) for v in seeds])
        start = start.detach().float().reshape(batch).contiguous().cpu()
        handle = library.lib.wn_create(
            cfg.layers, cfg.kernel_size, dilations.data_ptr(), cfg.residual_channels, cfg.gate_channels // 2,
            cfg.skip_channels, cfg.output_channels, 0 if cfg.output == "mulaw" else 1, cfg.mixtures,
            cfg.quantization_channels, embed.data_ptr(), params.data_ptr(), head.data_ptr(), batch, self.threads,
            seed_array, start.data_ptr(), float(temperature))
        if not handle:
            raise RuntimeError(f"wn_create failed for {cfg} at batch {batch} (out of memory?)")
        self.handle = handle

    def __del__(self) -> None:
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            self.library.lib.wn_free(handle)

    @torch.no_grad()
    def conditioning(self, cond: torch.Tensor | None, buffer: torch.Tensor | None = None) -> torch.Tensor | None:
        """The per-sample conditioning ``(B, C_cond, T)`` projected onto every layer's gate:
        ``(B, T, layers * gate_channels)`` float32, contiguous (``None`` without conditioning),
        written into the front of the flat float32 ``buffer`` when one is given. (Reusing one
        buffer matters: a new 10 MB block per call let glibc's heap grow to 1 GB over a 5 s
        utterance, its mmap threshold having risen past the block size.)"""
        if cond is None or self.cond_weight is None:
            return None
        b, _, t = cond.shape
        if buffer is None:
            return torch.matmul(cond.float().transpose(1, 2), self.cond_weight.T)
        out = buffer[:b * t * self.cond_weight.shape[0]].view(b, t, self.cond_weight.shape[0])
        return torch.matmul(cond.float().transpose(1, 2), self.cond_weight.T, out=out)

    def run(self, length: int, cond: torch.Tensor | None = None, *, constant: bool = False,
            forced: torch.Tensor | None = None, keep_outputs: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next ``length`` samples ``(B, length)`` (classes as floats for ``mulaw``, audio for
        ``mol``) and, with ``keep_outputs``, the head's outputs ``(B, length, output_channels)``.

        ``cond``: :meth:`conditioning`'s projection of these samples ``(B, length, .)``, or of
        one sample ``(B, 1, .)`` with ``constant`` (a label). ``forced (B, length)``: the inputs
        that follow each step instead of the draws (teacher forcing)."""
        width = len(self.net.layers) * self.gate_width
        if cond is not None:
            want = (self.batch, 1 if constant else length, width)
            if tuple(cond.shape) != want or cond.dtype != torch.float32 or not cond.is_contiguous():
                raise ValueError(f"cond {tuple(cond.shape)} {cond.dtype} must be contiguous float32 {want}")
        elif self.cond_weight is not None:
            raise ValueError("this WaveNet is conditioned: give cond (see NativeWaveNet.conditioning)")
        out = torch.empty(self.batch, length, dtype=torch.float32)
        outputs = (torch.empty(self.batch, length, self.net.config.output_channels, dtype=torch.float32)
                   if keep_outputs else None)
        if forced is not None:
            forced = forced.detach().float().contiguous()
            if forced.shape != (self.batch, length):
                raise ValueError(f"forced {tuple(forced.shape)} must be (batch, length) = {(self.batch, length)}")
        item = 0 if cond is None else cond.shape[1] * width
        step = 0 if cond is None or constant else width
        rc = self.library.lib.wn_run(self.handle, None if cond is None else cond.data_ptr(), item, step, length,
                                     out.data_ptr(), None if forced is None else forced.data_ptr(),
                                     None if outputs is None else outputs.data_ptr(), self.threads)
        if rc != 0:
            raise ValueError(f"an input class is outside 0 .. {self.net.config.quantization_channels - 1}")
        return out, outputs
