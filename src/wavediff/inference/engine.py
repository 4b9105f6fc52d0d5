"""The DiffWave inference engine: the reverse chain run on folded weights.

Apart from the training module (:mod:`wavediff.models.diffwave`), and equal to it: for
the same noise, fp32 output matches ``sample(model, ...)`` to float rounding.

The network, its layout of a batch (utterances end to end, padding rows between them as the
batch's mask) and its kernels are :class:`~wavediff.inference.network.FoldedNetwork`. This
module walks the rows with it in one of three modes (:class:`~wavediff.inference.mode.EngineMode`):

One pass: per utterance, once, the mel is upsampled and every layer's conditioner projection
``(rows, 2C)`` is computed and kept for all steps (when it fits in ``cache_bytes``). Per chain,
once: every step's per-layer biases. Per step and layer: one dilated conv (oneDNN,
channels-last, with the conditioner added in the same call), one in-place sigmoid, one
addcmul and two in-place GEMMs, over tiles of ``tile_rows`` rows so temporaries stay
small and in cache.

Chunks: inside each step the rows are processed in windows of ``chunk_samples`` plus the
network's reach (``halo``: (kernel-1)/2 * sum of dilations) on each side; only the window's
centre is kept, which equals the one-pass output. The conditioner is then recomputed per
window and step, so memory stays bounded by the window whatever the length (the noise state
and output, 8 bytes a sample, remain).

Streaming (the CPU default of :class:`~wavediff.pipelines.Vocoder`): every step and layer
advance together through the rows in blocks, each conditioner projection computed once; see
:mod:`wavediff.inference.streaming`.
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch

from wavediff.diffusion.samplers import Estimate, estimate_x0, noise_for_estimate
from wavediff.diffusion.schedule import ReverseStep, SamplingSchedule
from wavediff.diffusion.solvers import Solver
from wavediff.errors import WavediffError
from wavediff.inference.mode import EngineMode
from wavediff.inference.network import CPU_TILE_ROWS, FoldedNetwork, Segment, layout, padding_ranges
from wavediff.inference.streaming import place_cursors, stream_chain
from wavediff.models.diffwave import DiffWave

log = logging.getLogger(__name__)

GPU_BLOCK_ROWS = 1 << 18
DEFAULT_CACHE_BYTES = 2 ** 30


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
        mode: one pass (default), chunks or streaming (:class:`~wavediff.inference.mode.EngineMode`);
            a stream's ``block_rows`` defaults to 16384 on CPU, 262144 on GPU.
        native: use the native CPU kernels (:mod:`wavediff.inference.native`) for the gate and
            the int8 input quantization in ``bf16``/``int8``: ``None`` (default) where they can
            be built, ``False`` never (torch operations; ``fp32`` always uses these).
        tile_rows: rows per tile inside a layer (default 16384 on CPU, the whole window on GPU).
        cuda_graphs: on CUDA, record one network pass as a CUDA graph and replay it per step
            (one-pass mode).
        cache_bytes: most memory kept for the conditioner across steps (see :meth:`conditioner_plan`).
    """

    def __init__(self, model: DiffWave, *, precision: str = "fp32", weights: str = "float",
                 device: torch.device | str = "cpu", mode: EngineMode = EngineMode(),
                 tile_rows: int | None = None, cuda_graphs: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, native: bool | None = None) -> None:
        if not isinstance(mode, EngineMode):
            raise WavediffError(f"mode={mode!r} is not an EngineMode; use EngineMode.one_pass(), "
                                f".chunks(samples) or .stream()")
        if cache_bytes < 0:
            raise WavediffError(f"cache_bytes={cache_bytes} must be >= 0")
        self.net = FoldedNetwork(model, precision=precision, weights=weights, device=device, native=native,
                                 tile_rows=tile_rows)
        self.device = self.net.device
        self.precision = precision
        self.mode = mode
        self.cache_bytes = cache_bytes
        self.block_rows = mode.block_rows or (CPU_TILE_ROWS if self.device.type == "cpu" else GPU_BLOCK_ROWS)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        log.info("inference engine: %s on %s, %s, %s", precision, self.device, mode,
                 "native kernels" if self.net.native is not None else "torch operations")

    # ------------------------------------------------------------------ layout
    def _windows(self, total: int) -> list[tuple[int, int, int, int]]:
        """``(w0, w1, c0, c1)``: window rows and the centre rows it is exact on."""
        if self.mode.chunk_samples is None or self.mode.chunk_samples >= total:
            return [(0, total, 0, total)]
        out = []
        for c0 in range(0, total, self.mode.chunk_samples):
            c1 = min(total, c0 + self.mode.chunk_samples)
            out.append((max(0, c0 - self.net.halo), min(total, c1 + self.net.halo), c0, c1))
        return out

    # ------------------------------------------------------------------ conditioner
    def _upsampled_mel(self, mels: Sequence[torch.Tensor], segments: list[Segment],
                       w0: int, w1: int) -> torch.Tensor:
        """Upsampled mel for layout rows ``[w0, w1)``: ``(w1 - w0, n_mels)`` compute dtype,
        zero on padding rows (see :meth:`~wavediff.inference.network.FoldedNetwork.upsample_into`)."""
        out = self.net.workspace.get("mel_up", (w1 - w0, self.net.folded.n_mels), self.net.dtype)
        return self.net.upsample_into(mels, segments, w0, w1, out)

    def conditioner_plan(self, total: int, windows: int) -> str:
        """What is kept for all steps of a batch of ``total`` layout rows in ``windows`` windows:

        ``"projections"``: every layer's conditioner projection (one pass, when they fit in
        ``cache_bytes``); ``"mel"``: the upsampled mel, projected again per tile at each step
        (when it fits); ``"none"``: each window's mel is upsampled and projected at each step.
        Fresh memory is slow to fault in (see :mod:`wavediff.inference.workspace`), so beyond
        ``cache_bytes`` re-projecting (20 kFLOP a sample and layer) is the cheaper choice.
        """
        size = torch.empty((), dtype=self.net.dtype).element_size()
        if windows == 1 and total * len(self.net.layers) * 2 * self.net.channels * size <= self.cache_bytes:
            return "projections"
        if total * self.net.folded.n_mels * size <= self.cache_bytes:
            return "mel"
        return "none"

    def _plan_conditioner(self, mels: Sequence[torch.Tensor], segments: list[Segment], total: int,
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
        cache = self.net.workspace.get("cond", (len(self.net.layers), rows, 2 * self.net.channels), self.net.dtype)
        for t0 in range(0, rows, self.net.tile_rows):
            t1 = min(rows, t0 + self.net.tile_rows)
            for index, layer in enumerate(self.net.layers):
                torch.mm(mel_up[t0:t1], layer.cond_weight, out=cache[index, t0:t1])
        return cache

    # ------------------------------------------------------------------ network
    def _denoise_window(self, x: torch.Tensor, eps: torch.Tensor, window: tuple[int, int, int, int],
                        segments: list[Segment], bias: torch.Tensor, fill: torch.Tensor,
                        cond_cache: torch.Tensor | None, mel_up: torch.Tensor | None) -> None:
        """eps_theta on layout rows: reads ``x (total,)`` over the window, writes ``eps`` on
        its centre. ``bias (layers, 2C)`` and ``fill (layers, C)`` are this step's."""
        net = self.net
        w0, w1, c0, c1 = window
        rows = w1 - w0
        C, dt = net.channels, net.dtype
        tile = net.tile_rows
        pads = [(a - w0, b - w0) for a, b in padding_ranges(segments, w0, w1)]   # window-relative
        ws = net.workspace
        cur = ws.get("residual_a", (rows, C), dt)
        nxt = ws.get("residual_b", (rows, C), dt)
        skip = ws.get("skip", (rows, C), dt, zero=True)
        gate = ws.get("gate", (min(tile, rows), C), net.gate_dtype)
        scratch = ws.get("projection", (min(tile, rows), C), dt)
        ybuf = ws.get("conv_out", (min(tile, rows), 2 * C), dt) if cond_cache is None or net.int8 else None
        for t0 in range(0, rows, tile):
            t1 = min(rows, t0 + tile)
            cur[t0:t1] = net.input_layer(x[w0 + t0:w0 + t1])
        last = len(net.layers) - 1
        for index, layer in enumerate(net.layers):
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
                y, left = net.conv(layer, cur[t0 - d:t1 + d], bias[index], cond, up, ybuf)
                g = net.gate(y, gate[:n], left)
                residual = (cur[t0:t1], nxt[t0:t1]) if index < last else None
                net.project(layer, g, residual, skip[t0:t1], (0, n), True, scratch)
            cur, nxt = nxt, cur
        for t0 in range(c0 - w0, c1 - w0, tile):
            t1 = min(c1 - w0, t0 + tile)
            eps[w0 + t0:w0 + t1] = net.output_layers(skip[t0:t1])

    def _capture_step(self, x: torch.Tensor, eps: torch.Tensor, window: tuple[int, int, int, int],
                      segments: list[Segment], biases: torch.Tensor, fills: torch.Tensor,
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
               correct_x0: Sequence[Estimate | None] | None = None,
               solver: Solver | None = None) -> list[torch.Tensor]:
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
            solver: the update rule (:class:`~wavediff.diffusion.solvers.Solver`: ancestral, DDIM,
                DPM-Solver++); ``None``: ancestral. Every mode runs every rule.
        """
        if len(mels) == 0:
            return []
        mels = [m.to(torch.float32) for m in mels]
        gens, segments, total, stds = self._check_inputs(mels, generator, x_start, noise_std, correct_x0)
        if self.mode.streaming:
            return self._vocode_streaming(mels, segments, total, chain, gens, x_start, stds, solver)
        x = self._start_state(segments, total, gens, x_start, stds)
        dev_stds = [s.to(self.device) for s in stds] if stds is not None else None
        biases, fills = self.net.folded.step_constants(chain.timesteps)
        biases, fills = biases.to(self.device, self.net.dtype), fills.to(self.device, self.net.dtype)
        windows = self._windows(total)
        cond_cache, mel_all = self._plan_conditioner(mels, segments, total, len(windows))
        eps = self.net.workspace.get("eps", (total,), torch.float32, zero=True)
        graph = None
        if self.cuda_graphs and cond_cache is not None:
            graph, step_bias, step_fill = self._capture_step(x, eps, windows[0], segments, biases, fills, cond_cache)
        prev_x0 = None
        for step in chain.reverse_steps(solver):
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
            prev_x0 = self._update_state(step, x, eps, segments, gens, dev_stds, correct_x0, prev_x0)
        return [x[seg.start:seg.stop].cpu().clone() for seg in segments]

    def _check_inputs(self, mels: Sequence[torch.Tensor],
                      generator: torch.Generator | Sequence[torch.Generator] | None,
                      x_start: Sequence[torch.Tensor] | None, noise_std: Sequence[torch.Tensor] | None,
                      correct_x0: Sequence[Estimate | None] | None
                      ) -> tuple[list[torch.Generator | None], list[Segment], int, list[torch.Tensor] | None]:
        """:meth:`vocode`'s arguments checked against each other: one generator per utterance,
        the layout of the utterances in the state ``(segments, total samples)``, and each
        utterance's ``noise_std`` as a flat fp32 tensor (``None`` without a prior)."""
        n_mels = self.net.folded.n_mels
        for i, mel in enumerate(mels):
            if mel.dim() != 2 or mel.shape[0] != n_mels or mel.shape[1] < 1:
                raise WavediffError(f"mel {i} has shape {tuple(mel.shape)}; expected ({n_mels}, frames >= 1)")
        if isinstance(generator, (list, tuple)):
            if len(generator) != len(mels):
                raise WavediffError(f"got {len(generator)} generators for {len(mels)} mels; give one or one each")
            gens: list[torch.Generator | None] = list(generator)
        else:
            gens = [generator] * len(mels)
        lengths = [m.shape[-1] * self.net.hop_length for m in mels]
        segments, total = layout(lengths, self.net.pad_rows)
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
        if self.mode.streaming and correct_x0 is not None and any(c is not None for c in correct_x0):
            raise WavediffError("a correction of the clean estimate (sampler.consistency) needs every "
                                "sample of a step at once; use one pass or chunks, not streaming")
        return gens, segments, total, stds

    def _start_state(self, segments: list[Segment], total: int, gens: list[torch.Generator | None],
                     x_start: Sequence[torch.Tensor] | None, stds: list[torch.Tensor] | None) -> torch.Tensor:
        """The state ``(total,)`` holding each utterance's x_S: given, or drawn from its generator
        (scaled by its sigma under PriorGrad), utterance by utterance; zeros between them."""
        x = self.net.workspace.get("state", (total,), torch.float32, zero=True)
        for seg in segments:
            if x_start is not None:
                start = x_start[seg.index].to(torch.float32).reshape(-1)
            else:
                start = torch.randn((1, seg.length), generator=gens[seg.index], dtype=torch.float32)[0]
                if stds is not None:
                    start = start * stds[seg.index]
            x[seg.start:seg.stop] = start.to(self.device)
        return x

    def _update_state(self, step: ReverseStep, x: torch.Tensor, eps: torch.Tensor, segments: list[Segment],
                      gens: list[torch.Generator | None], stds: list[torch.Tensor] | None,
                      correct_x0: Sequence[Estimate | None] | None,
                      prev_x0: torch.Tensor | None = None) -> torch.Tensor | None:
        """One reverse step on each utterance of the state, in place, from the network's noise
        estimate ``eps``: the correction of the clean estimate where given, the mean, then the
        step's noise (drawn utterance by utterance, scaled by ``stds`` on the device).
        ``prev_x0`` ``(total,)``: the clean estimate the step before kept for a multistep rule;
        returns this step's where :attr:`~wavediff.diffusion.solvers.ReverseStep.keeps_x0`, else ``None``."""
        kept = self.net.workspace.get(f"x0_{step.index % 2}", x.shape, torch.float32) if step.keeps_x0 else None
        for seg in segments:
            xs = x[seg.start:seg.stop]
            correct = correct_x0[seg.index] if correct_x0 is not None else None
            if correct is not None:
                es = eps[seg.start:seg.stop]
                x0 = correct(step.number, estimate_x0(xs, es, step.gbar))
                if x0 is not None:
                    es.copy_(noise_for_estimate(xs, x0.to(xs.device, xs.dtype), step.gbar))
            es = eps[seg.start:seg.stop]
            if kept is not None:
                kept[seg.start:seg.stop] = estimate_x0(xs, es, step.gbar)
            step.mean_(xs, es, prev_x0[seg.start:seg.stop] if step.uses_x0_history else None)
            if step.adds_noise:
                z = torch.randn((1, seg.length), generator=gens[seg.index], dtype=torch.float32)[0].to(self.device)
                if stds is not None:
                    z.mul_(stds[seg.index])
                xs.add_(z, alpha=step.sigma)
        return kept

    def _vocode_streaming(self, mels: Sequence[torch.Tensor], segments: list[Segment], total: int,
                          chain: SamplingSchedule, gens: list[torch.Generator | None],
                          x_start: Sequence[torch.Tensor] | None,
                          stds: list[torch.Tensor] | None = None,
                          solver: Solver | None = None) -> list[torch.Tensor]:
        """:meth:`vocode` by :func:`~wavediff.inference.streaming.stream_chain`, drawing the
        same noise in the same order as one pass (each draw through a placed cursor, scaled
        by the segment's ``stds`` where given)."""
        if self.net.upsampler is None:
            raise WavediffError("streaming inference needs a mel-conditioned model")
        gens_or_default = [g if g is not None else torch.default_generator for g in gens]
        draws: list[tuple[torch.Generator, int]] = []
        keys: list[tuple[str | int, int]] = []
        if x_start is None:
            for seg in segments:
                draws.append((gens_or_default[seg.index], seg.length))
                keys.append(("start", seg.index))
        for step in chain.reverse_steps(solver):
            if not step.adds_noise:
                continue
            for seg in segments:
                draws.append((gens_or_default[seg.index], seg.length))
                keys.append((step.index, seg.index))
        scales = [stds[index] for _, index in keys] if stds is not None else None
        cursors = dict(zip(keys, place_cursors(draws, scales)))
        if x_start is None:
            starts: list = [cursors.pop(("start", seg.index)) for seg in segments]
        else:
            starts = [x_start[seg.index].to(self.device, torch.float32).reshape(-1) for seg in segments]
        outputs = stream_chain(self.net, mels, segments, total, chain, starts, cursors, self.block_rows, solver)
        return [out.cpu() for out in outputs]
