"""Streaming inference: every diffusion step and every layer advance through the audio together.

One network pass reaches ``R = (kernel-1)/2 * sum(dilations)`` samples each way (3,069 for
``base``), so step ``k`` of the reverse chain can produce its output up to ``R`` samples
behind the rows step ``k-1`` has finished, and inside a step layer ``l`` can produce rows
up to its dilation ``d_l`` behind layer ``l-1``. The run advances in blocks of ``B`` rows;
after block ``j`` the output of layer ``l`` of step ``k`` is complete up to row::

    front(j, k, l) = clamp((j + 1) * B - k * R - (d_0 + ... + d_l), 0, T)

Each layer keeps the last ``2 d_l`` rows of its input between blocks (its *context*), so
every row of every layer at every step is computed exactly once, with the same
arithmetic as one pass over the whole batch (the output equals it to float rounding,
tested). Rows before the layout and after its end are padding: the conv sees the layer's
padding value there, as in one pass.

What this buys, against one pass and against chunks with overlap:
- every layer's conditioner projection is computed **once per utterance** (at step 0) and
  kept only until the last step has used it, ``B + (S-1) R`` rows a layer in a ring
  buffer; one pass keeps it for the whole utterance (1 kB a sample for ``base``) or
  projects it again at every step;
- no row is computed twice (chunks recompute ``2R`` rows of overlap a window and step);
- memory does not grow with the length: every buffer is a ring whose size is set by ``B``
  and ``R`` (``B + (S-1) R`` rows; 4 times that for the skip sums); the noise of every step is drawn piece by piece from a copy of the
  generator placed where one whole draw would start (:class:`NoiseCursor`), so a given
  generator yields the same samples as :func:`~wavediff.diffusion.samplers.sample`. What
  grows with length is the input mel and the output, 4 bytes a sample.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Callable, Sequence

import torch

from wavediff.diffusion.samplers import estimate_x0
from wavediff.inference.network import FoldedNetwork, Segment, padding_ranges

if TYPE_CHECKING:
    from wavediff.diffusion.schedule import SamplingSchedule
    from wavediff.diffusion.solvers import Solver

NOISE_PIECE = 65536   # a multiple of 16: see piece_sizes
PAD_UNIT = 2048       # short tiles are padded to a multiple of this many rows (see tile_span)
SKIP_PERIODS = 4      # the skip sums' ring holds this many periods: a wrap-around every 4th tile at most


def piece_sizes(length: int, piece: int = NOISE_PIECE) -> list[int]:
    """Sizes whose consecutive ``torch.randn`` draws equal one draw of ``length`` on the CPU.

    torch's CPU normal sampler fills a tensor in groups of 16 (Box-Muller on 8 uniform
    pairs) and redraws the last 16 when the size is not a multiple of 16. Pieces that are
    multiples of 16, with a last piece of at least 16, consume the generator exactly as one
    draw does (tested against one draw)."""
    if piece % 16 or piece < 16:
        raise ValueError(f"piece={piece} must be a positive multiple of 16")
    sizes, left = [], length
    while left > 0:
        n = left if left - piece < 16 else piece
        sizes.append(n)
        left -= n
    return sizes


def _clone(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


class NoiseCursor:
    """One ``torch.randn((1, length))`` draw handed out a few samples at a time.

    Holds its own copy of the generator, placed where the whole draw would start, and at
    most :data:`NOISE_PIECE` + 15 drawn samples. With a ``scale`` ``(length,)`` (PriorGrad's
    sigma), sample ``i`` of the draw comes out multiplied by ``scale[i]``."""

    def __init__(self, generator: torch.Generator, length: int, scale: torch.Tensor | None = None) -> None:
        if scale is not None and scale.numel() != length:
            raise ValueError(f"scale has {scale.numel()} values for a draw of {length}")
        self.generator = generator
        self.sizes = iter(piece_sizes(length))
        self.buffer = torch.empty(0)
        self.used = 0
        self.scale = scale
        self.position = 0

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` samples ``(n,)`` fp32."""
        out = self._draw(n)
        if self.scale is not None:
            out = out * self.scale[self.position:self.position + n]
        self.position += n
        return out

    def _draw(self, n: int) -> torch.Tensor:
        parts = []
        while n > 0:
            if self.used == self.buffer.numel():
                size = next(self.sizes)   # StopIteration here means more was taken than the draw holds
                self.buffer = torch.randn((1, size), generator=self.generator, dtype=torch.float32)[0]
                self.used = 0
            m = min(n, self.buffer.numel() - self.used)
            parts.append(self.buffer[self.used:self.used + m])
            self.used += m
            n -= m
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def place_cursors(draws: Sequence[tuple[torch.Generator, int]],
                  scales: Sequence[torch.Tensor | None] | None = None) -> list[NoiseCursor]:
    """A cursor for each ``(generator, length)`` draw, in the order they would be made, its
    samples multiplied by ``scales[k]`` where given.

    Each generator is advanced past its draws (piece by piece, nothing kept), so it ends
    in the state the whole draws would leave it in."""
    cursors = []
    for k, (generator, length) in enumerate(draws):
        cursors.append(NoiseCursor(_clone(generator), length, None if scales is None else scales[k]))
        for size in piece_sizes(length):
            torch.randn((1, size), generator=generator, dtype=torch.float32)
    return cursors


def split_rows(a: int, b: int, tile: int) -> list[tuple[int, int]]:
    """``[a, b)`` cut into consecutive pieces of at most ``tile`` rows."""
    return [(t, min(b, t + tile)) for t in range(a, b, tile)]


class RingRows:
    """Rows of an endless ``(rows, width)`` sequence kept in a ``(capacity, width)`` buffer:
    row ``r`` lives at ``r % capacity``.

    Rows that wrap around the buffer's end are read through a scratch tile and written in
    two pieces, so the kernels always see whole tiles: oneDNN builds a kernel for every
    new shape, and tiles cut at the wrap made the run 1.5x slower (measured)."""

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data
        self.capacity = data.shape[0]

    def _pieces(self, a: int, b: int) -> tuple[int, int]:
        if b - a > self.capacity:
            raise AssertionError(f"rows [{a}, {b}) exceed the ring's capacity {self.capacity}")
        i = a % self.capacity
        return i, min(b - a, self.capacity - i)

    def view(self, a: int, b: int) -> torch.Tensor | None:
        """Rows ``[a, b)`` in place, or ``None`` where they wrap around."""
        i, first = self._pieces(a, b)
        return self.data[i:i + first] if first == b - a else None

    def pieces(self, a: int, b: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Rows ``[a, b)`` in place: one view, or two where they wrap around."""
        i, first = self._pieces(a, b)
        if first == b - a:
            return self.data[i:i + first]
        return self.data[i:], self.data[:b - a - first]

    def read(self, a: int, b: int, scratch: torch.Tensor) -> torch.Tensor:
        """Rows ``[a, b)``: a view, or a copy in ``scratch`` where they wrap around."""
        i, first = self._pieces(a, b)
        if first == b - a:
            return self.data[i:i + first]
        out = scratch[:b - a]
        out[:first] = self.data[i:]
        out[first:] = self.data[:b - a - first]
        return out

    def write(self, a: int, values: torch.Tensor, accumulate: bool = False) -> None:
        """Store (or add) ``values (n, ...)`` as rows ``[a, a + n)``."""
        n = values.shape[0]
        i, first = self._pieces(a, a + n)
        for dst, src in ((self.data[i:i + first], values[:first]), (self.data[:n - first], values[first:])):
            if src.shape[0]:
                dst.add_(src) if accumulate else dst.copy_(src)


def tile_span(o0: int, o1: int, block: int, unit: int, total: int) -> tuple[int, int]:
    """The rows a layer computes to produce its new output rows ``[o0, o1)``.

    A full block is one tile. A shorter one (a layer's first block, which starts at row 0,
    or its last, which ends at the layout's end ``total``) is padded to a multiple of
    ``unit`` rows: backwards into rows before the layout for a first block, forwards past
    its end otherwise; those rows are padding, computed and thrown away. oneDNN builds a
    kernel for every new shape (0.5 to 1 ms each, measured), and without the padding every
    layer of every step would have two shapes of its own."""
    n = o1 - o0
    if n >= block:
        return o0, o1
    m = min(block, -(-n // unit) * unit)
    if o0 == 0 and o1 < total:
        return o1 - m, o1
    return o0, o0 + m


def stream_chain(net: FoldedNetwork, mels: Sequence[torch.Tensor], segments: Sequence[Segment],
                 total: int, chain: "SamplingSchedule", starts: Sequence[torch.Tensor | NoiseCursor],
                 noise: dict[tuple[int, int], NoiseCursor], block_rows: int,
                 solver: "Solver | None" = None) -> list[torch.Tensor]:
    """Run the reverse chain over the layout, streaming; returns each segment's ``(L_i,)`` fp32 output.

    Args:
        net: the folded network: its layers, kernels and workspace.
        mels, segments, total: the utterances' mels and their layout rows (``total`` rows).
        chain: the sampling schedule, ``S = chain.num_steps`` steps.
        starts: per segment index, ``x_S`` as a ``(L_i,)`` tensor or a cursor to draw it from.
        noise: ``(step index, segment index)`` -> cursor of that step's noise, for every step that
            draws noise (ancestral: ``s = S-1 .. 1``, index ``s``).
        block_rows: ``B``, rows every stream advances per block.
        solver: the update rule (:mod:`wavediff.diffusion.solvers`; default ancestral). A
            multistep rule keeps each step's clean estimate in a ring until the next step has used it.
    """
    return StreamingChain(net, mels, segments, total, chain, starts, noise, block_rows, solver).run()


class StreamingChain:
    """One streaming run (see the module's docstring and :func:`stream_chain` for the arguments).

    Each block ``j`` does, in order: :meth:`_feed_conditioner` (the upsampled mel and every
    layer's conditioner projection for the rows step 0 reaches), :meth:`_feed_start` (x_S for
    the rows step 0 takes in), then for every step ``k`` :meth:`_advance_step`: the input layer,
    each residual layer (:meth:`_advance_layer`) and the reverse step's update on the rows of
    eps_theta that became complete (:meth:`_update`).
    """

    def __init__(self, net: FoldedNetwork, mels: Sequence[torch.Tensor], segments: Sequence[Segment],
                 total: int, chain: "SamplingSchedule", starts: Sequence[torch.Tensor | NoiseCursor],
                 noise: dict[tuple[int, int], NoiseCursor], block_rows: int,
                 solver: "Solver | None" = None) -> None:
        self.net, self.mels, self.segments, self.total = net, mels, segments, total
        self.starts, self.noise = starts, noise
        S, layers = chain.num_steps, net.layers
        L, C, dt, dev = len(layers), net.channels, net.dtype, net.device
        self.S, self.L, self.dev = S, L, dev
        self.dil = dil = [layer.dilation for layer in layers]
        self.reach = reach = list(itertools.accumulate(dil))   # reach[l] = d_0 + ... + d_l
        R = self.R = reach[-1]
        self.unit = unit = min(PAD_UNIT, block_rows)
        padded_total = -(-total // unit) * unit
        self.B = B = min(block_rows, padded_total)   # a short layout is one block
        # the longest span of rows any ring must hold, or the whole layout when that is shorter
        period = min(B + max(S - 1, 1) * R, padded_total)
        self.tile = tile = B   # a layer's block is one tile: every kernel sees the same few shapes (see tile_span)
        self.pre = pre = unit   # rows of room before a layer's context in the work buffers, for tiles padded backwards
        ws = net.workspace
        biases, fills = net.folded.step_constants(chain.timesteps)
        self.biases, self.fills = biases.to(dev, dt), fills.to(dev, dt)
        self.reverse = chain.reverse_steps(solver)   # reverse[k]: the k-th step run, s = S - k
        # a multistep rule's clean estimates, step k's kept until step k + 1 has read them (B + R rows)
        self.x0s = {k: RingRows(ws.get(f"stream_x0_{k}", (period,), torch.float32))
                    for k in range(S) if self.reverse[k].keeps_x0}
        self.x0_tile = ws.get("stream_x0_tile", (B,), torch.float32) if self.x0s else None

        self.xs = [RingRows(ws.get(f"stream_x{k}", (period,), torch.float32)) for k in range(S)]
        # the skip sums wrap at every tile of some layer unless their ring is long (64 B a row more)
        self.skips = [RingRows(ws.get(f"stream_skip{k}", (min(padded_total, SKIP_PERIODS * period), C), dt))
                      for k in range(S)]
        self.conds = [RingRows(ws.get(f"stream_cond{l}", (period, 2 * C), dt)) for l in range(L)]
        self.mel_ring = RingRows(ws.get("stream_mel", (period, net.folded.n_mels), dt))
        self.context = ws.get("stream_context", (S, 2 * R, C), dt)
        self.offsets = [0] + [2 * r for r in reach[:-1]]   # layer l's context: rows [offsets[l], offsets[l] + 2 d_l)
        for k in range(S):
            for l in range(L):
                self.context[k, self.offsets[l]:self.offsets[l] + 2 * dil[l]] = self.fills[S - 1 - k][l]
        width = pre + B + 3 * max(dil) + unit
        self.work = (ws.get("stream_a", (width, C), dt), ws.get("stream_b", (width, C), dt))
        self.ybuf = ws.get("conv_out", (tile, 2 * C), dt)
        self.gate = ws.get("gate", (tile, C), net.gate_dtype)
        self.wide = ws.get("stream_wrap_wide", (tile, 2 * C), dt)         # tiles that wrap around a ring
        self.narrow = ws.get("stream_wrap_narrow", (tile, C), dt)
        self.mel_tile = ws.get("stream_wrap_mel", (tile, net.folded.n_mels), dt)
        self.x_tile = ws.get("stream_wrap_x", (tile,), torch.float32)
        self.outputs = [torch.empty(seg.length, dtype=torch.float32, device=dev) for seg in segments]

    def run(self) -> list[torch.Tensor]:
        j = 0
        while True:
            self._feed_conditioner(j)
            self._feed_start(j)
            for k in range(self.S):
                self._advance_step(j, k)
            if self.front(j, self.S - 1, self.L - 1) >= self.total:
                return self.outputs
            j += 1

    def front(self, j: int, k: int, l: int) -> int:
        """Rows of layer ``l``'s output (``-1``: the step's input) of step ``k`` complete after block ``j``."""
        return min(max((j + 1) * self.B - k * self.R - (self.reach[l] if l >= 0 else 0), 0), self.total)

    def _write_segments(self, a: int, b: int, dest: torch.Tensor,
                        values: Callable[[Segment, int, int], torch.Tensor], zero_padding: bool) -> None:
        """``dest`` holds rows ``[a, b)``; ``values(seg, lo, hi)`` gives a segment's rows ``[lo, hi)``."""
        for seg in self.segments:
            lo, hi = max(a, seg.start), min(b, seg.stop)
            if lo < hi:
                dest[lo - a:hi - a] = values(seg, lo, hi)
        if zero_padding:
            for p0, p1 in padding_ranges(self.segments, a, b):
                dest[p0 - a:p1 - a] = 0.0

    def _start_rows(self, seg: Segment, lo: int, hi: int) -> torch.Tensor:
        src = self.starts[seg.index]
        if isinstance(src, NoiseCursor):
            return src.take(hi - lo).to(self.dev)
        return src[lo - seg.start:hi - seg.start]

    def _feed_conditioner(self, j: int) -> None:
        """The upsampled mel and every layer's conditioner projection, for the rows step 0 reaches in block ``j``."""
        net, front, tile = self.net, self.front, self.tile
        for a, b in split_rows(front(j - 1, 0, 0), front(j, 0, 0), tile):
            self.mel_ring.write(a, net.upsample_into(self.mels, self.segments, a, b, self.mel_tile[:b - a]))
        for l, layer in enumerate(net.layers):
            for a, b in split_rows(front(j - 1, 0, l), front(j, 0, l), tile):
                inside = self.conds[l].view(a, b)
                cond = torch.mm(self.mel_ring.read(a, b, self.mel_tile), layer.cond_weight,
                                out=inside if inside is not None else self.wide[:b - a])
                if inside is None:
                    self.conds[l].write(a, cond)

    def _feed_start(self, j: int) -> None:
        """x_S for the rows step 0 takes in during block ``j`` (zero on padding rows)."""
        x_tile = self.x_tile
        for a, b in split_rows(self.front(j - 1, 0, -1), self.front(j, 0, -1), self.tile):
            self._write_segments(a, b, x_tile[:b - a], self._start_rows, zero_padding=True)
            self.xs[0].write(a, x_tile[:b - a])

    def _advance_step(self, j: int, k: int) -> None:
        """Step ``k`` of the chain over the rows block ``j`` completes: input layer, residual layers, update."""
        cur, nxt = self.work
        i0, i1 = self.front(j - 1, k, -1), self.front(j, k, -1)
        c = self.pre + 2 * self.dil[0]
        for a, b in split_rows(i0, i1, self.tile):   # input layer: h_0 = relu(w x + b)
            cur[c + a - i0:c + b - i0] = self.net.input_layer(self.xs[k].read(a, b, self.x_tile))
        for l in range(self.L):
            if self._advance_layer(j, k, l, cur, nxt):
                cur, nxt = nxt, cur
        self._update(j, k)

    def _advance_layer(self, j: int, k: int, l: int, cur: torch.Tensor, nxt: torch.Tensor) -> bool:
        """Layer ``l`` of step ``k`` over its new rows: reads its input from ``cur`` (after the
        layer's kept context), writes the next layer's input into ``nxt`` and adds to the skip
        sum. Returns False when nothing new reached the layer (the buffers are not swapped)."""
        net, front, pre, unit, B = self.net, self.front, self.pre, self.unit, self.B
        layer, d = net.layers[l], self.dil[l]
        fill = self.fills[self.reverse[k].index]
        bias = self.biases[self.reverse[k].index]
        in0, in1 = front(j - 1, k, l - 1), front(j, k, l - 1)
        o0, o1 = front(j - 1, k, l), front(j, k, l)
        if in1 == in0 and o1 == o0:
            return False   # nothing new reached this layer (its context stays; the next layer's input is empty)
        ctx = self.context[k, self.offsets[l]:self.offsets[l] + 2 * d]
        base = in0 - 2 * d - pre   # the absolute row of cur[0]; cur[pre:pre + 2d] is the context
        cur[pre:pre + 2 * d] = ctx
        for p0, p1 in padding_ranges(self.segments, in0, in1):
            cur[p0 - base:p1 - base] = fill[l]
        if o1 > o0:
            t0, t1 = tile_span(o0, o1, B, unit, self.total)
            if t0 - d < in0 - 2 * d:   # padded backwards: rows before the layout
                cur[t0 - d - base:pre] = fill[l]
            if t1 + d > in1:           # past the layout's end: padding
                cur[in1 - base:t1 + d - base] = fill[l]
            cond = self.conds[l].pieces(t0, t1)   # rows outside [o0, o1) feed only rows that are thrown away
            if isinstance(cond, tuple) and not net.defers_conditioner:
                cond = self.conds[l].read(t0, t1, self.wide)
            y, left = net.conv(layer, cur[t0 - d - base:t1 + d - base], bias[l], cond, None, self.ybuf)
            n = t1 - t0
            g = net.gate(y, self.gate[:n], left)
            residual = None
            if l + 1 < self.L:   # the next layer's new rows, where its base puts them
                at = t0 - (o0 - 2 * self.dil[l + 1] - pre)
                residual = (cur[t0 - base:t1 - base], nxt[at:at + n])
            # only rows [o0, o1) are new (a padded tile's others are thrown away)
            net.project(layer, g, residual, self.skips[k].pieces(o0, o1), (o0 - t0, o1 - t0), l > 0, self.narrow)
        ctx.copy_(cur[in1 - 2 * d - base:in1 - base])   # the last 2d input rows, for the next block
        return True

    def _update(self, j: int, k: int) -> None:
        """The reverse step's update on the rows of eps_theta step ``k`` completed in block ``j``:
        into the next step's input ring, or, for the last step, the outputs."""
        step = self.reverse[k]
        e0, e1 = self.front(j - 1, k, self.L - 1), self.front(j, k, self.L - 1)
        for a, b in split_rows(e0, e1, self.tile):
            eps = self.net.output_layers(self.skips[k].read(a, b, self.narrow))
            x = self.xs[k].read(a, b, self.x_tile)
            prev = self.x0s[k - 1].read(a, b, self.x0_tile) if step.uses_x0_history else None
            if step.keeps_x0:
                self.x0s[k].write(a, estimate_x0(x, eps.to(x.dtype), step.gbar))

            def update(seg: Segment, lo: int, hi: int, x: torch.Tensor = x, eps: torch.Tensor = eps,
                       a: int = a, prev: torch.Tensor | None = prev) -> torch.Tensor:
                v = step.mean(x[lo - a:hi - a], eps[lo - a:hi - a], None if prev is None else prev[lo - a:hi - a])
                if step.adds_noise:
                    v.add_(self.noise[(step.index, seg.index)].take(hi - lo).to(self.dev), alpha=step.sigma)
                return v

            if k + 1 < self.S:
                new = torch.empty(b - a, dtype=torch.float32, device=self.dev)
                self._write_segments(a, b, new, update, zero_padding=True)
                self.xs[k + 1].write(a, new)
            else:
                for seg in self.segments:
                    lo, hi = max(a, seg.start), min(b, seg.stop)
                    if lo < hi:
                        self.outputs[seg.index][lo - seg.start:hi - seg.start] = update(seg, lo, hi)
