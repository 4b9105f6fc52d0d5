"""wavediff.models.diffwave.conditioning: the paper's sinusoidal step encoding, the hop factorised
into upsampling strides, and the upsampler against torch's transposed convolutions."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.config import load_config
from wavediff.errors import WavediffError
from wavediff.models.diffwave.conditioning import MelUpsampler, factorize_hop, sinusoidal_step_encoding
from wavediff.models.diffwave import build_model


def _conv_transpose_reference(up: MelUpsampler, mel: torch.Tensor) -> torch.Tensor:
    """The upsampler as the paper draws it: torch's transposed 2-D convolutions, then leaky ReLU."""
    x = mel.unsqueeze(1)
    for stage in up.stages:
        x = torch.nn.functional.leaky_relu(
            torch.nn.functional.conv_transpose2d(x, stage.weight, stage.bias, stride=stage.stride,
                                                 padding=stage.padding), up.leaky_slope)
    return x.squeeze(1)


def test_step_encoding_is_the_papers_sinusoid_and_interpolates():
    enc = sinusoidal_step_encoding(torch.tensor([0.0, 7.0]), 128)
    j = 5
    assert enc[1, j].item() == pytest.approx(math.sin(7.0 * 10 ** (j * 4 / 63)), abs=1e-5)
    assert enc[1, 64 + j].item() == pytest.approx(math.cos(7.0 * 10 ** (j * 4 / 63)), abs=1e-5)
    model = build_model(load_config("base"))
    emb = model.step_embedding
    lo, hi = emb.encode(torch.tensor([4])), emb.encode(torch.tensor([5]))
    mid = emb.encode(torch.tensor([4.25]))
    torch.testing.assert_close(mid, 0.75 * lo + 0.25 * hi)
    torch.testing.assert_close(emb.encode(torch.tensor([4.0])), lo)


@pytest.mark.parametrize("hop, strides", [(256, [16, 16]), (160, [10, 16]), (300, [15, 20]), (200, [10, 20]),
                                          (441, [21, 21]), (16, [4, 4]), (2, [2])])
def test_hop_factorisation_and_upsampled_length(hop, strides):
    assert factorize_hop(hop) == strides
    up = MelUpsampler(hop)
    assert up(torch.rand(2, 5, 7)).shape == (2, 5, 7 * hop)


@pytest.mark.parametrize("hop", [256, 300, 441, 2, 3])
def test_upsampler_equals_torch_transposed_convolutions_with_gradients(hop):
    torch.manual_seed(hop)
    up = MelUpsampler(hop)
    with torch.no_grad():
        for stage in up.stages:
            stage.weight.normal_()
            stage.bias.normal_()
    mel = torch.randn(2, 6, 5, requires_grad=True)
    out = up(mel)
    ref = _conv_transpose_reference(up, mel)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    params = [mel, *up.parameters()]
    got = torch.autograd.grad(out, params, g)
    want = torch.autograd.grad(ref, params, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("hop", [257, 37, 2 ** 21])
def test_unfactorable_hops_are_rejected(hop):
    with pytest.raises(WavediffError, match=f"hop_length={hop} cannot be factored"):
        factorize_hop(hop)
