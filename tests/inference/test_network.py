"""wavediff.inference.network: int8 quantisation within half a step, int8 activations rounded to the
nearest level, int8 convolutions close to fp32, and the padding ranges."""
from __future__ import annotations

import pytest
import torch

from wavediff.inference.network import Segment, padding_ranges
from wavediff.inference.streaming import split_rows
from wavediff.inference import InferenceEngine

from helpers import fast_chain


def test_int8_activations_round_to_the_nearest_level():
    from wavediff.inference.network import INT8_ZERO_POINT, _quantize_rows

    rows = torch.tensor([[-2.0, -0.51, 0.0], [0.26, 1.0, 2.0]], dtype=torch.bfloat16)
    q, scale = _quantize_rows(rows)
    assert q.dtype == torch.uint8 and scale == pytest.approx(2.0 / 127)
    expected = torch.round(rows.float() / scale) + INT8_ZERO_POINT
    assert torch.equal(q.float(), expected)
    assert int(q.min()) == INT8_ZERO_POINT - 127 and int(q.max()) == INT8_ZERO_POINT + 127


@pytest.mark.skipif(not __import__("wavediff.inference.network", fromlist=["x"]).int8_available(),
                    reason="this torch has no oneDNN quantized conv")
def test_int8_convs_stay_close_to_fp32(random_vocoder):
    cfg, model, mel = random_vocoder
    chain = fast_chain(cfg)
    ref = InferenceEngine(model).vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    out = InferenceEngine(model, precision="int8").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    bf16 = InferenceEngine(model, precision="bf16").vocode([mel], chain, torch.Generator().manual_seed(1))[0]
    rel = float((out - ref).norm() / ref.norm())
    assert float((bf16 - ref).norm() / ref.norm()) < rel < 0.05   # int8 is coarser than bf16, still close


def test_split_and_padding_ranges():
    assert split_rows(3, 10, 4) == [(3, 7), (7, 10)]

    segs = [Segment(0, 4, 5), Segment(1, 12, 3)]
    assert padding_ranges(segs, 0, 20) == [(0, 4), (9, 12), (15, 20)]
    assert padding_ranges(segs, 5, 8) == []
    assert padding_ranges([], 2, 6) == [(2, 6)]
