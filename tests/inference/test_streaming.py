"""wavediff.inference.streaming: every step and layer advancing together equals Algorithm 2.
References: the training module run through sample() (closed-form Algorithm 2), torch's own whole
noise draws, and plain tensors for the ring buffers."""
from __future__ import annotations

import sys

import pytest
import torch

from wavediff.inference.streaming import NOISE_PIECE, RingRows, piece_sizes, place_cursors, tile_span
from wavediff.inference import EngineMode, InferenceEngine

from helpers import fast_chain, peak_memory_growth, reference_vocode


@pytest.mark.parametrize("length", [1, 5, 16, 17, 100, NOISE_PIECE + 7, 2 * NOISE_PIECE + 20])
def test_noise_cursor_pieces_equal_one_whole_draw(length):
    whole_gen = torch.Generator().manual_seed(11)
    whole = torch.randn((1, length), generator=whole_gen, dtype=torch.float32)[0]
    after = torch.randn(7, generator=whole_gen)
    gen = torch.Generator().manual_seed(11)
    cursor, = place_cursors([(gen, length)])
    # the placed generator ends where the whole draw would have left it
    assert torch.equal(torch.randn(7, generator=gen), after)
    taken, sizes = [], [3, 1, 1000, 17, 40000, 70000, 5]
    left = length
    for n in sizes * 10:
        n = min(n, left)
        if n == 0:
            break
        taken.append(cursor.take(n))
        left -= n
    if left:
        taken.append(cursor.take(left))
    assert torch.equal(torch.cat(taken), whole)
    assert sum(piece_sizes(length)) == length


def test_cursors_follow_the_order_of_the_draws():
    gen = torch.Generator().manual_seed(3)
    first, second = place_cursors([(gen, 50), (gen, 30)])
    ref = torch.Generator().manual_seed(3)
    a = torch.randn((1, 50), generator=ref)[0]
    b = torch.randn((1, 30), generator=ref)[0]
    assert torch.equal(second.take(30), b) and torch.equal(first.take(50), a)


@pytest.mark.parametrize("steps", [6, 3, 1])
@pytest.mark.parametrize("block", [50, 333, 4096, 100_000])
def test_streaming_equals_the_training_module(random_vocoder, steps, block):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg, steps)
    ref = reference_vocode(model, mel, chain, seed=1)
    engine = InferenceEngine(model, mode=EngineMode.stream(block))
    out = engine.vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    assert ref.abs().max() > 0.5
    assert (out - ref).abs().max() < 1e-4


def test_streaming_batch_equals_each_utterance_alone(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    mels = [mel, torch.rand(cfg.mel.n_mels, 7), torch.rand(cfg.mel.n_mels, 19), torch.rand(cfg.mel.n_mels, 1)]
    engine = InferenceEngine(model, mode=EngineMode.stream(640))
    gens = [torch.Generator().manual_seed(20 + i) for i in range(len(mels))]
    batch = engine.vocode(mels, chain, gens)
    for i, m in enumerate(mels):
        alone = reference_vocode(model, m, chain, seed=20 + i)
        assert batch[i].shape == alone.shape
        assert (batch[i] - alone).abs().max() < 1e-4


def test_streaming_with_given_start_and_shared_generator_equals_one_pass(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg, 3)
    mels = [mel, torch.rand(cfg.mel.n_mels, 11)]
    starts = [torch.randn(m.shape[-1] * 256) for m in mels]
    one = InferenceEngine(model).vocode(mels, chain, torch.Generator().manual_seed(4), x_start=starts)
    streamed = InferenceEngine(model, mode=EngineMode.stream(512)).vocode(
        mels, chain, torch.Generator().manual_seed(4), x_start=starts)
    for a, b in zip(one, streamed):
        assert (a - b).abs().max() < 1e-4


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_streaming_stays_close_to_fp32(random_vocoder, precision):
    from wavediff.inference.network import int8_available

    if precision == "int8" and not int8_available():
        pytest.skip("no oneDNN int8 conv in this torch build")
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(2))[0]
    out = InferenceEngine(model, precision=precision, mode=EngineMode.stream(300)).vocode(
        [mel], chain, torch.Generator().manual_seed(2))[0]
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    assert 0 < rel < (0.01 if precision == "bf16" else 0.03)


def test_ring_rows_read_and_write_across_the_end():
    ring = RingRows(torch.zeros(10, 2))
    plain = torch.zeros(40, 2)
    scratch = torch.empty(10, 2)
    for a, b in [(0, 7), (7, 13), (13, 20), (20, 29), (29, 31)]:
        values = torch.randn(b - a, 2)
        ring.write(a, values)
        plain[a:b] = values
        extra = torch.randn(b - a, 2)
        ring.write(a, extra, accumulate=True)
        plain[a:b] += extra
        assert torch.equal(ring.read(a, b, scratch), plain[a:b])
        view = ring.view(a, b)
        assert (view is None) == (a // 10 != (b - 1) // 10)
        pieces = ring.pieces(a, b)
        assert torch.equal(torch.cat(pieces) if isinstance(pieces, tuple) else pieces, plain[a:b])
    with pytest.raises(AssertionError, match="capacity"):
        ring.read(0, 11, torch.empty(11, 2))


@pytest.mark.parametrize("o0,o1,total", [(0, 100, 10_000), (0, 3000, 10_000), (4096, 8192, 10_000),
                                         (8192, 10_000, 10_000), (0, 300, 300), (5000, 7001, 7001)])
def test_tile_spans_cover_the_new_rows_with_few_shapes(o0, o1, total):
    block, unit = 4096, 1024
    t0, t1 = tile_span(o0, o1, block, unit, total)
    assert t0 <= o0 and o1 <= t1
    assert (t1 - t0) == block or (t1 - t0) % unit == 0
    if t0 < o0:           # padded backwards only into rows before the layout
        assert t1 == o1 and t0 < 0 and o0 == 0
    if t1 > o1:           # padded forwards only past its end
        assert o1 == total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak from /proc/self/status")
def test_streaming_peak_memory_does_not_grow_with_length():
    short, long = 200, 1600                      # 51k and 410k samples, 6 steps
    growth = peak_memory_growth(long, "stream", 6) - peak_memory_growth(short, "stream", 6)
    # the output (4 bytes a sample: 1.4 MB more) and the mel grow; no activation buffer does
    assert growth < 12e6, f"streaming peak grew by {growth / 1e6:.1f} MB for 8x the audio"
