"""wavediff.inference.folding: weights in inference form: int8 weights within half a step,
the step embedding folded into per-layer constants."""
from __future__ import annotations

import torch

from wavediff.inference import FoldedDiffWave, quantize_int8


def test_quantize_int8_error_is_at_most_half_a_step():
    w = torch.randn(7, 5, 3)
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and int(q.abs().max()) == 127
    assert torch.all((q.float() * scale - w).abs() <= scale / 2 + 1e-7)


def test_step_constants_are_the_projected_step_embedding(random_vocoder):
    cfg, model, _ = random_vocoder
    folded = FoldedDiffWave(model)
    steps = torch.tensor([0.0, 3.5, 49.0])
    bias, fill = folded.step_constants(steps)
    emb = model.step_embedding(steps)
    p = model.layers[0].step_projection(emb)                 # layer 0: scale 1, offset 0
    assert torch.allclose(fill[:, 0], -p, atol=1e-6)
    w = model.layers[0].dilated_conv.weight.sum(dim=2)         # (2C, C) taps summed
    expected = (p @ w.t() + model.layers[0].dilated_conv.bias + model.layers[0].cond_projection.bias)
    expected[:, 16:] *= 2                                       # filter half doubled for tanh via sigmoid
    assert torch.allclose(bias[:, 0], expected, atol=1e-5)
