"""The network both inference engines run: folded weights on a device, and its kernels.

:class:`FoldedNetwork` holds a :class:`~wavediff.inference.folding.FoldedDiffWave` cast to the
compute dtype (and, for int8, its convs and projections packed for oneDNN) and the pieces of one
denoiser pass over *time-major* rows ``(rows, C)``: the input layer, each residual layer's
dilated conv, gate and projections, the output layers, and the mel upsampler. The one-pass and
chunked engine (:mod:`wavediff.inference.engine`) and the streaming chain
(:mod:`wavediff.inference.streaming`) both call these and nothing else of each other.

Layout. A batch of utterances of any lengths is laid end to end with ``G = max dilation``
padding rows before, between and after them (:func:`layout`)::

    rows: [G pad | utterance 0 | G pad | utterance 1 | ... | G pad]

Before each layer the padding rows of the residual stream are set to the value that makes the
conv see zeros there (see :mod:`wavediff.inference.folding`; :func:`padding_ranges` finds them),
so every utterance is computed exactly as if it were alone: the padding is the batch's mask.

int8: the conv input is quantized per tile (uint8 around 128, scale max|x|/127) and the conv
runs in int8; the gate's output, which lies in (-1, 1), is written as uint8 levels of the fixed
scale 1/127, and the residual and skip projections run as one int8 GEMM ``(n, C) -> (n, 2C)``
(weights per output channel), whose halves are added into the residual stream and the skip sum
in one pass. Those projections need the native kernels (:mod:`wavediff.inference.native`: the
gate adds the conditioner as it reads and writes the levels directly, and the two sums are one
kernel); without them they stay bf16, which is faster than the int8 GEMM with torch operations
around it (measured).
"""
from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from wavediff.errors import WavediffError
from wavediff.inference import native as native_kernels
from wavediff.inference.folding import FoldedDiffWave, quantize_int8
from wavediff.inference.workspace import Workspace, keep_freed_memory
from wavediff.models.diffwave import DiffWave
from wavediff.precision import AUTO, ENGINE_PRECISIONS, check_precision, compute_dtype

log = logging.getLogger(__name__)

MEL_MARGIN_FRAMES = 4   # frames either side that make a window's upsampled mel exact
CPU_TILE_ROWS = 16384
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
class Segment:
    """Utterance ``index`` occupies rows ``[start, start + length)`` of the layout."""

    index: int
    start: int
    length: int

    @property
    def stop(self) -> int:
        return self.start + self.length


class Layer:
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


def layout(lengths: Sequence[int], pad_rows: int) -> tuple[list[Segment], int]:
    """Utterances of ``lengths`` samples laid end to end with ``pad_rows`` padding rows before,
    between and after them: their segments and the layout's total rows."""
    segments, row = [], pad_rows
    for i, n in enumerate(lengths):
        segments.append(Segment(i, row, n))
        row += n + pad_rows
    return segments, row


def padding_ranges(segments: Sequence[Segment], a: int, b: int) -> list[tuple[int, int]]:
    """Rows of ``[a, b)`` outside every segment (segments sorted by start), as absolute rows."""
    out, prev = [], a
    for seg in segments:
        if seg.stop <= a:
            continue
        if seg.start >= b:
            break
        if seg.start > prev:
            out.append((prev, seg.start))
        prev = max(prev, seg.stop)
    if prev < b:
        out.append((prev, b))
    return out


class FoldedNetwork:
    """A mel-conditioned :class:`DiffWave` folded for inference, on one device and precision.

    Args:
        model: the trained denoiser (its weights are copied and folded; the module is left as it is).
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (:mod:`wavediff.precision`).
        weights: ``"float"`` or ``"int8"`` (per-channel int8 rounding of the stack's matrices).
        device: where to run; oneDNN fused kernels are used on CPU.
        native: the native CPU kernels for the gate and the int8 quantization: ``None`` where
            they can be built, ``False`` never, ``True`` required.
        tile_rows: rows per tile inside a layer (default 16384 on CPU, everything on GPU).
    """

    def __init__(self, model: DiffWave, *, precision: str = "fp32", weights: str = "float",
                 device: torch.device | str = "cpu", native: bool | None = None,
                 tile_rows: int | None = None) -> None:
        check_precision(precision, [p for p in ENGINE_PRECISIONS if p != AUTO])
        if tile_rows is not None and tile_rows < 1:
            raise WavediffError(f"tile_rows={tile_rows} must be >= 1")
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = compute_dtype(precision)
        # CPU: tiles keep temporaries in cache; GPU: one launch per op over the whole window
        self.tile_rows = tile_rows or (CPU_TILE_ROWS if self.device.type == "cpu" else 1 << 40)
        source = copy.deepcopy(model).float().cpu().eval()   # folded on the CPU in float64; model untouched
        self.folded = FoldedDiffWave(source, weights)
        self.upsampler = source.upsampler.to(self.device) if source.upsampler is not None else None
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
        if native and self.native is None:
            raise WavediffError(f"native=True but the native kernels are unavailable for {precision} on "
                                f"{self.device} (see the log); use native=None or False")
        # int8 projections read the gate's output as uint8 levels and need the native kernels to
        # be worth it: with torch operations they ran slower than bf16 ones (docs/results.md, "Vocoding speed")
        self.int8_projections = self.int8 and self.native is not None
        last = len(self.folded.layers) - 1
        self.layers = [Layer(layer, dt, dev, self.int8, self.int8_projections, i == last)
                       for i, layer in enumerate(self.folded.layers)]
        self.gate_dtype = torch.uint8 if self.int8_projections else dt
        # the int8 conv leaves the conditioner to the native gate, which can read it in two pieces
        self.defers_conditioner = self.int8 and self.native is not None
        self.workspace = Workspace(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()   # oneDNN's int8 outputs are new tensors each call (see the workspace module)

    def input_layer(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(w x + b)``: the noisy signal's rows ``(n,)`` fp32 -> the residual stream ``(n, C)`` fp32."""
        return torch.addmm(self.in_bias, x.unsqueeze(1), self.in_weight).relu_()

    def output_layers(self, skip: torch.Tensor) -> torch.Tensor:
        """The skip sum's rows ``(n, C)`` -> the predicted noise ``(n,)`` fp32."""
        h = torch.addmm(self.skip_bias, skip, self.skip_weight).relu_()
        return torch.addmm(self.out_bias.to(self.dtype), h, self.out_weight)[:, 0].float()

    def upsample_into(self, mels: Sequence[torch.Tensor], segments: Sequence[Segment],
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

    def conv(self, layer: Layer, x_rows: torch.Tensor, bias: torch.Tensor, cond: torch.Tensor | None,
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
            q, scale = self.quantize(x_rows)
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
            q, scale = self.quantize(x_rows)
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

    def quantize(self, x_rows: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``(n, C)`` rows -> uint8 ``(n, C)`` around 128 and the scale max|x|/127 (native when loaded)."""
        if self.native is not None and x_rows.is_contiguous():
            q = self.workspace.get("quantized", tuple(x_rows.shape), torch.uint8)
            return q, self.native.quantize(x_rows, q, INT8_ZERO_POINT)
        return _quantize_rows(x_rows)

    def gate(self, y: torch.Tensor, out: torch.Tensor,
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

    def project(self, layer: Layer, g: torch.Tensor, residual: tuple[torch.Tensor, torch.Tensor] | None,
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
