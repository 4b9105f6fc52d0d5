"""The DiffWave inference engine: the reverse chain run on folded weights.

Apart from the training module (:mod:`wavediff.models.diffwave`), and equal to it: for
the same noise, fp32 output matches ``sample(model, ...)`` to float rounding.

Layout. Activations are *time-major* ``(rows, channels)``; a batch of utterances of any
lengths is laid end to end with ``G = max dilation`` padding rows before, between and
after them::

    rows: [G pad | utterance 0 | G pad | utterance 1 | ... | G pad]

Before each layer the padding rows of the residual stream are set to the value that
makes the conv see zeros there (see :mod:`wavediff.inference.folding`), so every
utterance is computed exactly as if it were alone: the padding is the batch's mask.

Per utterance, once: the mel is upsampled and, in one-pass mode, every layer's
conditioner projection ``(rows, 2C)`` is computed and kept for all steps. Per chain,
once: every step's per-layer biases. Per step and layer: one dilated conv (oneDNN,
channels-last, with the conditioner added in the same call), one in-place sigmoid, one
addcmul and two in-place GEMMs, over tiles of ``tile_rows`` rows so temporaries stay
small and in cache.

int8: the conv input is quantized per tile (uint8 around 128, scale max|x|/127) and the
conv runs in int8; the gate's output, which lies in (-1, 1), is written as uint8 levels of
the fixed scale 1/127, and the residual and skip projections run as one int8 GEMM
``(n, C) -> (n, 2C)`` (weights per output channel), whose halves are added into the
residual stream and the skip sum in one pass. Those projections need the native kernels
(:mod:`wavediff.inference.native`: the gate adds the conditioner as it reads and writes the
levels directly, and the two sums are one kernel); without them they stay bf16, which is
faster than the int8 GEMM with torch operations around it (measured).

Streaming (``streaming=True``, the CPU default of :class:`~wavediff.pipelines.Vocoder`):
every step and layer advance together through the rows in blocks, each conditioner
projection computed once; see :mod:`wavediff.inference.streaming`.

Chunking (``chunk_samples``): inside each step the rows are processed in windows of
``chunk_samples`` plus the network's reach (``halo``: (kernel-1)/2 * sum of dilations)
on each side; only the window's centre is kept, which equals the one-pass output. The
conditioner is then recomputed per window and step, so memory stays bounded by the
window whatever the length (the noise state and output, 8 bytes a sample, remain).
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from wavediff.diffusion.samplers import Estimate, estimate_x0, noise_for_estimate
from wavediff.diffusion.schedule import SamplingSchedule
from wavediff.errors import WavediffError
from wavediff.inference import native as native_kernels
from wavediff.inference.folding import FoldedDiffWave, quantize_int8
from wavediff.inference.streaming import place_cursors, stream_chain
from wavediff.inference.workspace import Workspace, keep_freed_memory
from wavediff.models.diffwave import DiffWave
from wavediff.precision import AUTO, ENGINE_PRECISIONS, check_precision, compute_dtype

log = logging.getLogger(__name__)

MEL_MARGIN_FRAMES = 4   # frames either side that make a window's upsampled mel exact
CPU_TILE_ROWS = 16384
GPU_BLOCK_ROWS = 1 << 18
DEFAULT_CACHE_BYTES = 2 ** 30
INT8_ZERO_POINT = 128   # activations as uint8 around 128, scale = max |x| / 127 per tile
GATE_SCALE = 1.0 / 127  # the folded gate's output lies in (-1, 1): int8 levels of a fixed scale


def int8_available() -> bool:
    """oneDNN's quantized conv is in this build of torch (x86 CPUs)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


def _quantize_rows(rows: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``(n, C)`` rows -> uint8 ``(n, C)`` around 128 and the per-tensor scale."""
    lo, hi = torch.aminmax(rows)
    scale = max(-float(lo), float(hi), 1e-12) / 127.0
    with warnings.catch_warnings():   # quantized dtypes are deprecated in torch, the oneDNN kernel is not
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_tensor(rows.float(), scale, INT8_ZERO_POINT, torch.quint8)
    # the quantized tensor's bytes, viewed as plain uint8 (int_repr() would copy them)
    raw = torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), 0, q.shape, q.stride())
    return raw, scale


@dataclass(frozen=True)
class _Segment:
    """Utterance ``index`` occupies rows ``[start, start + length)`` of the layout."""

    index: int
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


class _Layer:
    """One folded layer's tensors on the engine's device and dtype (and, for int8, its conv
    weights and, with ``int8_projections``, its residual and skip projections quantized per
    output channel and packed for oneDNN; the last layer has no residual projection)."""

    def __init__(self, folded, dtype: torch.dtype, device: torch.device, int8: bool = False,
                 int8_projections: bool = False, last: bool = False) -> None:
        self.dilation = folded.dilation
        self.packed = None
        self.projection = None
        if int8:
            q, scale = quantize_int8(folded.conv_weight)
            self.weight_scale = scale.flatten().to(torch.float32)
            self.weight_zero = torch.zeros(q.shape[0], dtype=torch.int64)
            self.packed = torch.ops.onednn.qconv_prepack(q, self.weight_scale, 1.0, INT8_ZERO_POINT, [1, 1],
                                                         [0, 0], [1, folded.dilation], 1, None)
        if int8_projections:
            # one GEMM for both projections: (C, 2C) time-major = [residual | skip]
            both = folded.skip_weight if last else torch.cat([folded.residual_weight, folded.skip_weight], 1)
            q, scale = quantize_int8(both.t(), dim=0)          # (outputs, C) per output channel
            self.projection = torch.ops.onednn.qlinear_prepack(q.contiguous(), None)   # it reads raw memory
            self.projection_scale = scale.flatten().to(torch.float32)
            self.projection_zero = torch.zeros(q.shape[0], dtype=torch.int64)
        # channels-last weights let oneDNN keep the activations channels-last and fuse the add
        self.conv_weight = folded.conv_weight.to(device, dtype).contiguous(memory_format=torch.channels_last)
        self.cond_weight = folded.cond_weight.to(device, dtype)
        self.residual_weight = folded.residual_weight.to(device, dtype)
        self.skip_weight = folded.skip_weight.to(device, dtype)


def _as_conv_input(rows: torch.Tensor) -> torch.Tensor:
    """``(n, C)`` contiguous rows -> ``(1, C, 1, n)`` channels-last view (no copy)."""
    return rows.t().unsqueeze(0).unsqueeze(2)


class InferenceEngine:
    """Vocode mel spectrograms with a mel-conditioned :class:`DiffWave`.

    Args:
        model: the trained denoiser (its weights are copied and folded; the module is
            left as it is).
        precision: ``"fp32"`` (the reference); ``"bf16"`` (GEMMs, convs and activations in
            bfloat16; the diffusion state and its update stay fp32); ``"int8"`` (as bf16, but
            each dilated conv runs in int8 on oneDNN: weights per output channel, the input
            quantized per tile with scale max|x|/127; and, with the native kernels, the residual
            and skip projections run as one int8 GEMM of the gate output in levels of 1/127;
            x86 CPUs only).
        weights: ``"float"`` or ``"int8"`` (per-channel int8 rounding of the stack's
            matrices; see :class:`~wavediff.inference.folding.FoldedDiffWave`).
        device: where to run; oneDNN fused kernels are used on CPU.
        chunk_samples: ``None`` for one pass over the whole batch with the conditioner
            cached for all steps; otherwise the window size of chunked inference.
        streaming: advance every step and layer together through the audio in blocks of
            ``block_rows`` (:mod:`wavediff.inference.streaming`): exact, each conditioner
            projection computed once, memory bounded whatever the length. Excludes
            ``chunk_samples``.
        block_rows: rows a streaming block advances (default 16384 on CPU, 262144 on GPU).
        native: use the native CPU kernels (:mod:`wavediff.inference.native`) for the gate and
            the int8 input quantization in ``bf16``/``int8``: ``None`` (default) where they can
            be built, ``False`` never (torch operations; ``fp32`` always uses these).
        tile_rows: rows per tile inside a layer (default 16384 on CPU, the whole window on GPU).
        cuda_graphs: on CUDA, record one network pass as a CUDA graph and replay it per step
            (one-pass mode).
    """

    def __init__(self, model: DiffWave, *, precision: str = "fp32", weights: str = "float",
                 device: torch.device | str = "cpu", chunk_samples: int | None = None,
                 tile_rows: int | None = None, cuda_graphs: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, streaming: bool = False,
                 block_rows: int | None = None, native: bool | None = None) -> None:
        check_precision(precision, [p for p in ENGINE_PRECISIONS if p != AUTO])
        if chunk_samples is not None and chunk_samples < 1:
            raise WavediffError(f"chunk_samples={chunk_samples} must be >= 1 (or None for one pass)")
        if streaming and chunk_samples is not None:
            raise WavediffError(f"streaming=True excludes chunk_samples={chunk_samples}; give one or the other")
        if block_rows is not None and block_rows < 1:
            raise WavediffError(f"block_rows={block_rows} must be >= 1")
        if cache_bytes < 0:
            raise WavediffError(f"cache_bytes={cache_bytes} must be >= 0")
        self.cache_bytes = cache_bytes
        if tile_rows is not None and tile_rows < 1:
            raise WavediffError(f"tile_rows={tile_rows} must be >= 1")
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = compute_dtype(precision)
        self.chunk_samples = chunk_samples
        self.streaming = streaming
        self.block_rows = block_rows or (CPU_TILE_ROWS if self.device.type == "cpu" else GPU_BLOCK_ROWS)
        # CPU: tiles keep temporaries in cache; GPU: one launch per op over the whole window
        self.tile_rows = tile_rows or (CPU_TILE_ROWS if self.device.type == "cpu" else 1 << 40)
        source = copy.deepcopy(model).float().cpu().eval()   # folded on the CPU in float64; model untouched
        self.folded = FoldedDiffWave(source, weights)
        self.upsampler = source.upsampler.to(self.device) if source.upsampler is not None else None
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.hop_length = model.hop_length
        self.channels = self.folded.channels
        self.pad_rows = self.folded.max_dilation
        self.halo = self.folded.halo
        dev, dt = self.device, self.dtype
        self.int8 = precision == "int8"
        if self.int8 and not (self.device.type == "cpu" and int8_available()):
            raise WavediffError(f"precision='int8' needs oneDNN's quantized conv on a CPU; this is {self.device} "
                                f"with torch {torch.__version__}; use 'bf16' or 'fp32'")
        self.skip_weight = self.folded.skip_weight.to(dev, dt)
        self.skip_bias = self.folded.skip_bias.to(dev, dt)
        self.out_weight = self.folded.out_weight.to(dev, dt)
        self.out_bias = self.folded.out_bias.to(dev, torch.float32)
        self.in_weight = self.folded.in_weight.to(dev, torch.float32)
        self.in_bias = self.folded.in_bias.to(dev, torch.float32)
        self.use_onednn = self.device.type == "cpu" and torch.backends.mkldnn.is_available()
        wants_native = native is not False and self.device.type == "cpu" and precision != "fp32"
        self.native = native_kernels.load() if wants_native else None
        # int8 projections read the gate's output as uint8 levels and need the native kernels to
        # be worth it: with torch operations they ran slower than bf16 ones (docs/results.md, "Vocoding speed")
        self.int8_projections = self.int8 and self.native is not None
        last = len(self.folded.layers) - 1
        self.layers = [_Layer(layer, dt, dev, self.int8, self.int8_projections, i == last)
                       for i, layer in enumerate(self.folded.layers)]
        self.gate_dtype = torch.uint8 if self.int8_projections else dt
        # the int8 conv leaves the conditioner to the native gate, which can read it in two pieces
        self.defers_conditioner = self.int8 and self.native is not None
        mode = "streaming" if streaming else f"chunks of {chunk_samples}" if chunk_samples else "one pass"
        log.info("inference engine: %s on %s, %s, %s", precision, self.device, mode,
                 "native kernels" if self.native is not None else "torch operations")
        if native and self.native is None:
            raise WavediffError(f"native=True but the native kernels are unavailable for {precision} on "
                                f"{self.device} (see the log); use native=None or False")
        self.workspace = Workspace(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()   # oneDNN's int8 outputs are new tensors each call (see the workspace module)

    # ------------------------------------------------------------------ layout
    def _layout(self, lengths: Sequence[int]) -> tuple[list[_Segment], int]:
        segments, row = [], self.pad_rows
        for i, n in enumerate(lengths):
            segments.append(_Segment(i, row, n))
            row += n + self.pad_rows
        return segments, row

    def _windows(self, total: int) -> list[tuple[int, int, int, int]]:
        """``(w0, w1, c0, c1)``: window rows and the centre rows it is exact on."""
        if self.chunk_samples is None or self.chunk_samples >= total:
            return [(0, total, 0, total)]
        out = []
        for c0 in range(0, total, self.chunk_samples):
            c1 = min(total, c0 + self.chunk_samples)
            out.append((max(0, c0 - self.halo), min(total, c1 + self.halo), c0, c1))
        return out

    # ------------------------------------------------------------------ conditioner
    def _upsampled_mel(self, mels: Sequence[torch.Tensor], segments: list[_Segment],
                       w0: int, w1: int) -> torch.Tensor:
        """Upsampled mel for layout rows ``[w0, w1)``: ``(w1 - w0, n_mels)`` compute dtype,
        zero on padding rows (see :meth:`_upsample_into`)."""
        out = self.workspace.get("mel_up", (w1 - w0, self.folded.n_mels), self.dtype)
        return self._upsample_into(mels, segments, w0, w1, out)

    def _upsample_into(self, mels: Sequence[torch.Tensor], segments: Sequence[_Segment],
                       w0: int, w1: int, out: torch.Tensor) -> torch.Tensor:
        """Write the upsampled mel of layout rows ``[w0, w1)`` into ``out (w1 - w0, n_mels)``,
        zero on padding rows. Each utterance is upsampled over the frames the rows need plus
        a margin, which gives the same samples as upsampling it whole."""
        assert self.upsampler is not None
        out.zero_()
        hop = self.hop_length
        block = max(hop, self.tile_rows // hop * hop) if self.device.type == "cpu" else None
        for seg in segments:
            a, b = max(w0, seg.start), min(w1, seg.stop)
            if a >= b:
                continue
            mel = mels[seg.index]
            frames = mel.shape[-1]
            # in blocks of about a tile: small temporaries, no fresh pages to fault in
            step = block or (b - a)
            for a0 in range(a, b, step):
                b0 = min(b, a0 + step)
                f0 = max(0, (a0 - seg.start) // hop - MEL_MARGIN_FRAMES)
                f1 = min(frames, -(-(b0 - seg.start) // hop) + MEL_MARGIN_FRAMES)
                up = self.upsampler(mel[:, f0:f1].unsqueeze(0).to(self.device, torch.float32))[0]  # (M, samples)
                lo = a0 - seg.start - f0 * hop
                out[a0 - w0:b0 - w0] = up[:, lo:lo + (b0 - a0)].t()
        return out

    def conditioner_plan(self, total: int, windows: int) -> str:
        """What is kept for all steps of a batch of ``total`` layout rows in ``windows`` windows:

        ``"projections"``: every layer's conditioner projection (one pass, when they fit in
        ``cache_bytes``); ``"mel"``: the upsampled mel, projected again per tile at each step
        (when it fits); ``"none"``: each window's mel is upsampled and projected at each step.
        Fresh memory is slow to fault in (see :mod:`wavediff.inference.workspace`), so beyond
        ``cache_bytes`` re-projecting (20 kFLOP a sample and layer) is the cheaper choice.
        """
        size = torch.empty((), dtype=self.dtype).element_size()
        if windows == 1 and total * len(self.layers) * 2 * self.channels * size <= self.cache_bytes:
            return "projections"
        if total * self.folded.n_mels * size <= self.cache_bytes:
            return "mel"
        return "none"

    def _plan_conditioner(self, mels: Sequence[torch.Tensor], segments: list[_Segment], total: int,
                          windows: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        plan = self.conditioner_plan(total, windows)
        if plan == "projections":
            return self._project_conditioner(self._upsampled_mel(mels, segments, 0, total)), None
        if plan == "mel":
            return None, self._upsampled_mel(mels, segments, 0, total)
        return None, None

    def _project_conditioner(self, mel_up: torch.Tensor) -> torch.Tensor:
        """Every layer's conditioner projection ``(layers, rows, 2C)`` of an upsampled mel."""
        rows = mel_up.shape[0]
        cache = self.workspace.get("cond", (len(self.layers), rows, 2 * self.channels), self.dtype)
        for t0 in range(0, rows, self.tile_rows):
            t1 = min(rows, t0 + self.tile_rows)
            for index, layer in enumerate(self.layers):
                torch.mm(mel_up[t0:t1], layer.cond_weight, out=cache[index, t0:t1])
        return cache

    # ------------------------------------------------------------------ network
    def _conv(self, layer: _Layer, x_rows: torch.Tensor, bias: torch.Tensor, cond: torch.Tensor | None,
              mel_up: torch.Tensor | None, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``conv(x_rows) + bias + conditioner`` for the centre rows of ``x_rows (n + 2d, C)``.

        ``cond (n, 2C)`` is a cached projection; otherwise it is projected from
        ``mel_up (n, n_mels)`` into ``out``. Returns ``(y (n, 2C), left)``: ``left`` is the
        part of the conditioner still to be added (by the gate), or ``None``."""
        d = layer.dilation
        n = x_rows.shape[0] - 2 * d
        if layer.packed is not None and cond is not None and self.native is not None:
            # int8 conv alone (1.1 ms a 16k-row tile, against 1.5 ms for copying the conditioner
            # in and summing onto it); the native gate adds the conditioner as it reads
            q, scale = self._quantize(x_rows)
            y = torch.ops.onednn.qconv2d_pointwise(
                _as_conv_input(q), scale, INT8_ZERO_POINT, layer.packed, layer.weight_scale, layer.weight_zero,
                bias, [1, 1], [0, 0], [1, d], 1, 1.0, 0, self.dtype, "none", [], "")
            return y.permute(0, 2, 3, 1).reshape(n, -1), cond
        if layer.packed is not None:
            y_rows = out[:n]
            if cond is not None:
                y_rows.copy_(cond)
            else:
                torch.mm(mel_up, layer.cond_weight, out=y_rows)
            q, scale = self._quantize(x_rows)
            torch.ops.onednn.qconv2d_pointwise.binary(
                _as_conv_input(q), scale, INT8_ZERO_POINT, layer.packed, layer.weight_scale, layer.weight_zero,
                _as_conv_input(y_rows), bias, [1, 1], [0, 0], [1, d], 1, 1.0, 0, self.dtype, 1.0, 0,
                "sum", 1.0, "none", [], "")
            return y_rows, None
        xv = _as_conv_input(x_rows)
        if self.use_onednn:
            if cond is not None:
                y = torch.ops.mkldnn._convolution_pointwise.binary(
                    xv, _as_conv_input(cond), layer.conv_weight, bias, [0, 0], [1, 1], [1, d], 1,
                    "add", 1.0, None, [], None)
                return y.permute(0, 2, 3, 1).reshape(n, -1), None
            y_rows = torch.mm(mel_up, layer.cond_weight, out=out[:n])
            torch.ops.mkldnn._convolution_pointwise_.binary(
                _as_conv_input(y_rows), xv, layer.conv_weight, bias, [0, 0], [1, 1], [1, d], 1,
                "add", 1.0, None, [], None)
            return y_rows, None
        y = F.conv2d(xv, layer.conv_weight, bias, dilation=(1, d)).permute(0, 2, 3, 1).reshape(n, -1)
        if cond is not None:
            return y.add_(cond), None
        return y.addmm_(mel_up, layer.cond_weight), None

    def _quantize(self, x_rows: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``(n, C)`` rows -> uint8 ``(n, C)`` around 128 and the scale max|x|/127 (native when loaded)."""
        if self.native is not None and x_rows.is_contiguous():
            q = self.workspace.get("quantized", tuple(x_rows.shape), torch.uint8)
            return q, self.native.quantize(x_rows, q, INT8_ZERO_POINT)
        return _quantize_rows(x_rows)

    def _gate(self, y: torch.Tensor, out: torch.Tensor,
              cond: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The folded gate ``g' = s_g - 2 s_g s_f`` of conv output ``y + cond`` (``(n, 2C)``;
        ``cond`` when the conv did not add it) into ``out (n, C)`` (see
        :mod:`wavediff.inference.folding`); ``y`` is overwritten on the torch path. With int8
        projections (native kernels only), ``out`` is uint8: ``g'`` in levels of
        :data:`GATE_SCALE` around 128."""
        C = self.channels
        quantize = GATE_SCALE if self.int8_projections else None
        if self.native is not None and y.is_contiguous():
            return self.native.gate(y, out, -2.0, cond, quantize)
        if quantize is not None:
            raise AssertionError("int8 projections run with the native kernels only")
        if isinstance(cond, tuple):
            y[:cond[0].shape[0]].add_(cond[0])
            y[cond[0].shape[0]:].add_(cond[1])
        elif cond is not None:
            y.add_(cond)
        y.sigmoid_()
        return torch.addcmul(y[:, :C], y[:, :C], y[:, C:], value=-2.0, out=out)

    def _project(self, layer: _Layer, g: torch.Tensor, residual: tuple[torch.Tensor, torch.Tensor] | None,
                 skip: torch.Tensor | tuple[torch.Tensor, torch.Tensor], rows: tuple[int, int],
                 accumulate: bool, scratch: torch.Tensor) -> None:
        """A layer's residual and skip projections of its gate output ``g (n, C)``.

        ``residual = (current, next)``, each ``(n, C)``: ``next = current + g W_r`` (``None``
        for the last layer). ``skip`` receives rows ``rows = (s0, s1)`` of ``g W_s``, added
        when ``accumulate``, else stored: one ``(s1 - s0, C)`` tensor, or two whose rows
        follow each other (a ring's rows that wrap). ``scratch`` is an ``(n, C)`` buffer.
        With int8 projections, ``g`` is uint8 levels and both are one oneDNN int8 GEMM whose
        halves the native kernel adds in one pass."""
        s0, s1 = rows
        n = g.shape[0]
        if layer.projection is not None:
            y = torch.ops.onednn.qlinear_pointwise(g, GATE_SCALE, INT8_ZERO_POINT, layer.projection,
                                                   layer.projection_scale, layer.projection_zero, None, 1.0, 0,
                                                   self.dtype, "none", [], "")
            self.native.residual_skip(y, residual, skip, rows, accumulate)
            return
        if residual is not None:
            torch.addmm(residual[0], g, layer.residual_weight, out=residual[1])
        if isinstance(skip, torch.Tensor) and rows == (0, n):
            if accumulate:
                skip.addmm_(g, layer.skip_weight)
            else:
                torch.mm(g, layer.skip_weight, out=skip)
            return
        part = torch.mm(g, layer.skip_weight, out=scratch[:n])[s0:s1]
        at = 0
        for piece in (skip,) if isinstance(skip, torch.Tensor) else skip:
            rows_here = part[at:at + piece.shape[0]]
            piece.add_(rows_here) if accumulate else piece.copy_(rows_here)
            at += piece.shape[0]

    def _denoise_window(self, x: torch.Tensor, eps: torch.Tensor, window: tuple[int, int, int, int],
                        segments: list[_Segment], bias: torch.Tensor, fill: torch.Tensor,
                        cond_cache: torch.Tensor | None, mel_up: torch.Tensor | None) -> None:
        """eps_theta on layout rows: reads ``x (total,)`` over the window, writes ``eps`` on
        its centre. ``bias (layers, 2C)`` and ``fill (layers, C)`` are this step's."""
        w0, w1, c0, c1 = window
        rows = w1 - w0
        C, dt = self.channels, self.dtype
        tile = self.tile_rows
        pads = self._pad_ranges(segments, w0, w1)
        ws = self.workspace
        cur = ws.get("residual_a", (rows, C), dt)
        nxt = ws.get("residual_b", (rows, C), dt)
        skip = ws.get("skip", (rows, C), dt, zero=True)
        gate = ws.get("gate", (min(tile, rows), C), self.gate_dtype)
        scratch = ws.get("projection", (min(tile, rows), C), dt)
        ybuf = ws.get("conv_out", (min(tile, rows), 2 * C), dt) if cond_cache is None or self.int8 else None
        for t0 in range(0, rows, tile):
            t1 = min(rows, t0 + tile)
            h = torch.addmm(self.in_bias, x[w0 + t0:w0 + t1].unsqueeze(1), self.in_weight)
            cur[t0:t1] = h.relu_()
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            for p0, p1 in pads:
                cur[p0:p1] = fill[index]
            d = layer.dilation
            lo, hi = d, rows - d
            if index < last:   # rows the conv cannot reach keep their value (never read by the centre)
                nxt[:lo] = cur[:lo]
                nxt[hi:] = cur[hi:]
            for t0 in range(lo, hi, tile):
                t1 = min(hi, t0 + tile)
                n = t1 - t0
                cond = None if cond_cache is None else cond_cache[index][w0 + t0:w0 + t1]
                up = None if mel_up is None else mel_up[t0:t1]
                y, left = self._conv(layer, cur[t0 - d:t1 + d], bias[index], cond, up, ybuf)
                g = self._gate(y, gate[:n], left)
                residual = (cur[t0:t1], nxt[t0:t1]) if index < last else None
                self._project(layer, g, residual, skip[t0:t1], (0, n), True, scratch)
            cur, nxt = nxt, cur
        for t0 in range(c0 - w0, c1 - w0, tile):
            t1 = min(c1 - w0, t0 + tile)
            h = torch.addmm(self.skip_bias, skip[t0:t1], self.skip_weight).relu_()
            eps[w0 + t0:w0 + t1] = torch.addmm(self.out_bias.to(dt), h, self.out_weight)[:, 0].float()

    def _pad_ranges(self, segments: list[_Segment], w0: int, w1: int) -> list[tuple[int, int]]:
        """Padding rows of the layout inside window ``[w0, w1)``, window-relative."""
        edges, prev = [], 0
        for seg in segments:
            edges.append((prev, seg.start))
            prev = seg.stop
        edges.append((prev, w1 if not segments else segments[-1].stop + self.pad_rows))
        out = []
        for a, b in edges:
            a, b = max(a, w0), min(b, w1)
            if a < b:
                out.append((a - w0, b - w0))
        return out

    def _capture_step(self, x: torch.Tensor, eps: torch.Tensor, window: tuple[int, int, int, int],
                      segments: list[_Segment], biases: torch.Tensor, fills: torch.Tensor,
                      cond_cache: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        """Record one network pass as a CUDA graph (batch-1 latency is otherwise kernel launches).

        The graph reads ``x`` and writes ``eps`` in place; each step copies its constants into
        the returned ``(bias, fill)`` buffers and replays it."""
        step_bias, step_fill = biases[0].clone(), fills[0].clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):   # warm-up outside the graph: workspace and kernels chosen
            self._denoise_window(x, eps, window, segments, step_bias, step_fill, cond_cache, None)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._denoise_window(x, eps, window, segments, step_bias, step_fill, cond_cache, None)
        return graph, step_bias, step_fill

    # ------------------------------------------------------------------ sampling
    @torch.inference_mode()
    def vocode(self, mels: Sequence[torch.Tensor], chain: SamplingSchedule,
               generator: torch.Generator | Sequence[torch.Generator] | None = None,
               x_start: Sequence[torch.Tensor] | None = None,
               noise_std: Sequence[torch.Tensor] | None = None,
               correct_x0: Sequence[Estimate | None] | None = None) -> list[torch.Tensor]:
        """Run the reverse chain for each mel; returns ``[(F_i * hop,) fp32 audio]`` (not clipped).

        Args:
            mels: ``(n_mels, F_i)`` each; lengths may differ.
            chain: the sampling schedule (see :mod:`wavediff.diffusion.schedule`).
            generator: one generator, drawn in utterance order (x_S of every utterance,
                then each step's noise utterance by utterance), or one generator per
                utterance, which makes each output independent of its batch. A single
                utterance with one generator draws exactly as :func:`~wavediff.diffusion.samplers.sample`.
            x_start: optional ``(L_i,)`` starting noise per utterance.
            noise_std: optional ``(L_i,)`` per utterance: PriorGrad's sigma
                (:mod:`wavediff.diffusion.prior`), scaling the drawn x_S and every step's noise.
            correct_x0: optional, one per utterance: ``correct(s, x0_hat (L_i,)) -> x0' | None``,
                as :func:`~wavediff.diffusion.samplers.sample`'s ``correct_x0`` (GLA-Grad's
                consistency step). It needs the whole step at once: one pass or chunks, not streaming.
        """
        if len(mels) == 0:
            return []
        n_mels = self.folded.n_mels
        for i, mel in enumerate(mels):
            if mel.dim() != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
                raise WavediffError(f"mel {i} has shape {tuple(mel.shape)}; expected ({n_mels}, frames >= 1)")
        if isinstance(generator, (list, tuple)):
            if len(generator) != len(mels):
                raise WavediffError(f"got {len(generator)} generators for {len(mels)} mels; give one or one each")
            gens: list[torch.Generator | None] = list(generator)
        else:
            gens = [generator] * len(mels)
        mels = [m.to(torch.float32) for m in mels]
        lengths = [m.shape[-1] * self.hop_length for m in mels]
        segments, total = self._layout(lengths)
        if x_start is not None:
            for seg in segments:
                if x_start[seg.index].numel() != seg.length:
                    raise WavediffError(f"x_start {seg.index} has {x_start[seg.index].numel()} samples, "
                                        f"expected {seg.length}")
        stds: list[torch.Tensor] | None = None
        if noise_std is not None:
            if len(noise_std) != len(mels):
                raise WavediffError(f"got {len(noise_std)} noise_std tensors for {len(mels)} mels; give one each")
            stds = [s.to(torch.float32).reshape(-1) for s in noise_std]
            for seg in segments:
                if stds[seg.index].numel() != seg.length:
                    raise WavediffError(f"noise_std {seg.index} has {stds[seg.index].numel()} samples, "
                                        f"expected {seg.length}")
        if correct_x0 is not None and len(correct_x0) != len(mels):
            raise WavediffError(f"got {len(correct_x0)} x0 corrections for {len(mels)} mels; give one each")
        if self.streaming:
            if correct_x0 is not None and any(c is not None for c in correct_x0):
                raise WavediffError("a correction of the clean estimate (sampler.consistency) needs every "
                                    "sample of a step at once; use one pass or chunks, not streaming")
            return self._vocode_streaming(mels, segments, total, chain, gens, x_start, stds)
        x = self.workspace.get("state", (total,), torch.float32, zero=True)
        dev_stds = [s.to(self.device) for s in stds] if stds is not None else None
        for seg in segments:
            if x_start is not None:
                start = x_start[seg.index].to(torch.float32).reshape(-1)
            else:
                start = torch.randn((1, seg.length), generator=gens[seg.index], dtype=torch.float32)[0]
                if stds is not None:
                    start = start * stds[seg.index]
            x[seg.start:seg.stop] = start.to(self.device)
        biases, fills = self.folded.step_constants(chain.steps)
        biases, fills = biases.to(self.device, self.dtype), fills.to(self.device, self.dtype)
        windows = self._windows(total)
        cond_cache, mel_all = self._plan_conditioner(mels, segments, total, len(windows))
        eps = self.workspace.get("eps", (total,), torch.float32, zero=True)
        graph = None
        if self.cuda_graphs and cond_cache is not None:
            graph, step_bias, step_fill = self._capture_step(x, eps, windows[0], segments, biases, fills, cond_cache)
        for step in chain.reverse_steps():
            s = step.index
            if graph is not None:
                step_bias.copy_(biases[s])
                step_fill.copy_(fills[s])
                graph.replay()
            else:
                for window in windows:
                    if cond_cache is not None:
                        mel_up = None
                    elif mel_all is not None:
                        mel_up = mel_all[window[0]:window[1]]
                    else:
                        mel_up = self._upsampled_mel(mels, segments, window[0], window[1])
                    self._denoise_window(x, eps, window, segments, biases[s], fills[s], cond_cache, mel_up)
            for seg in segments:
                xs = x[seg.start:seg.stop]
                correct = correct_x0[seg.index] if correct_x0 is not None else None
                if correct is not None:
                    es = eps[seg.start:seg.stop]
                    x0 = correct(step.number, estimate_x0(xs, es, step.gbar))
                    if x0 is not None:
                        es.copy_(noise_for_estimate(xs, x0.to(xs.device, xs.dtype), step.gbar))
                step.mean_(xs, eps[seg.start:seg.stop])
                if step.adds_noise:
                    z = torch.randn((1, seg.length), generator=gens[seg.index], dtype=torch.float32)[0].to(self.device)
                    if dev_stds is not None:
                        z.mul_(dev_stds[seg.index])
                    xs.add_(z, alpha=step.sigma)
        return [x[seg.start:seg.stop].cpu().clone() for seg in segments]

    def _vocode_streaming(self, mels: Sequence[torch.Tensor], segments: list[_Segment], total: int,
                          chain: SamplingSchedule, gens: list[torch.Generator | None],
                          x_start: Sequence[torch.Tensor] | None,
                          stds: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """:meth:`vocode` by :func:`~wavediff.inference.streaming.stream_chain`, drawing the
        same noise in the same order as one pass (each draw through a placed cursor, scaled
        by the segment's ``stds`` where given)."""
        if self.upsampler is None:
            raise WavediffError("streaming inference needs a mel-conditioned model")
        gens_or_default = [g if g is not None else torch.default_generator for g in gens]
        draws: list[tuple[torch.Generator, int]] = []
        keys: list[tuple[str | int, int]] = []
        if x_start is None:
            for seg in segments:
                draws.append((gens_or_default[seg.index], seg.length))
                keys.append(("start", seg.index))
        for s in range(chain.num_steps - 1, 0, -1):
            for seg in segments:
                draws.append((gens_or_default[seg.index], seg.length))
                keys.append((s, seg.index))
        scales = [stds[index] for _, index in keys] if stds is not None else None
        cursors = dict(zip(keys, place_cursors(draws, scales)))
        if x_start is None:
            starts: list = [cursors.pop(("start", seg.index)) for seg in segments]
        else:
            starts = [x_start[seg.index].to(self.device, torch.float32).reshape(-1) for seg in segments]
        outputs = stream_chain(self, mels, segments, total, chain, starts, cursors, self.block_rows)
        return [out.cpu() for out in outputs]
