"""The DiffWave network: sizes from the references, shapes, embedding, receptive field."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.config import ModelConfig, load_config
from wavediff.errors import WavediffError
from wavediff.models.diffwave.conditioning import MelUpsampler, factorize_hop, sinusoidal_step_encoding
from wavediff.models.diffwave import DiffWave, build_model, count_parameters


def test_parameter_counts_match_lmnt_diffwave():
    # lmnt-com/diffwave: 2,619,971 (BASE) and 6,885,315 (LARGE): one shared upsampler, no weight
    # norm. The paper rounds to 2.64M and 6.91M (the first author's code, with weight norm, has
    # 2,637,305 and 6,914,297).
    assert count_parameters(build_model(load_config("base"))) == 2_619_971
    assert count_parameters(build_model(load_config("large"))) == 6_885_315


def test_receptive_fields():
    assert load_config("base").model.receptive_field == 6139  # (3-1) * 3 * (1+...+512) + 1
    assert load_config("sc09-uncond").model.receptive_field == 24571
    cfg = ModelConfig(residual_layers=7, dilation_cycle=3, kernel_size=5)
    assert cfg.dilations == [1, 2, 4, 1, 2, 4, 1]
    assert cfg.receptive_field == 4 * 15 + 1


def test_measured_receptive_field_equals_the_formula():
    """An impulse's influence on the output spans exactly (r - 1) / 2 samples each way."""
    cfg = ModelConfig(residual_layers=5, residual_channels=4, dilation_cycle=3, conditioning="none")
    torch.manual_seed(0)
    model = DiffWave(cfg, num_steps=10)
    torch.nn.init.normal_(model.output_projection.weight)  # zero-initialised otherwise
    x = torch.randn(1, 201, requires_grad=True)
    out = model(x, torch.tensor([3]))
    out[0, 100].backward()
    nonzero = torch.nonzero(x.grad[0].abs() > 0).flatten()
    half = (cfg.receptive_field - 1) // 2
    assert nonzero.min().item() == 100 - half and nonzero.max().item() == 100 + half


def test_output_is_zero_at_initialisation_and_shapes_per_mode():
    base = load_config("tiny")
    mel_model = build_model(base)
    audio = torch.randn(2, 4 * 256)
    out = mel_model(audio, torch.tensor([0, 5]), mel=torch.rand(2, 80, 4))
    assert out.shape == (2, 1024) and torch.count_nonzero(out) == 0
    cls = DiffWave(ModelConfig(residual_layers=3, residual_channels=8, conditioning="class", num_classes=10), 50)
    assert cls(torch.randn(3, 300), torch.tensor([1, 2, 3]), labels=torch.tensor([0, 9, 4])).shape == (3, 300)
    unc = DiffWave(ModelConfig(residual_layers=3, residual_channels=8, conditioning="none"), 50)
    assert unc(torch.randn(1, 77), torch.tensor([1.5])).shape == (1, 77)


def test_conditioning_errors_are_named():
    model = build_model(load_config("tiny"))
    with pytest.raises(WavediffError, match=r"\(B, 80, F\)"):
        model(torch.randn(1, 512), torch.tensor([1]), mel=torch.rand(1, 64, 2))
    with pytest.raises(WavediffError, match="does not match audio length"):
        model(torch.randn(1, 500), torch.tensor([1]), mel=torch.rand(1, 80, 2))
    cls = DiffWave(ModelConfig(residual_layers=2, residual_channels=4, conditioning="class", num_classes=3), 10)
    with pytest.raises(WavediffError, match=r"0..2"):
        cls(torch.randn(1, 10), torch.tensor([1]), labels=torch.tensor([3]))


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


def _conv_transpose_reference(up: MelUpsampler, mel: torch.Tensor) -> torch.Tensor:
    """The upsampler as the paper draws it: torch's transposed 2-D convolutions, then leaky ReLU."""
    x = mel.unsqueeze(1)
    for stage in up.stages:
        x = torch.nn.functional.leaky_relu(
            torch.nn.functional.conv_transpose2d(x, stage.weight, stage.bias, stride=stage.stride,
                                                 padding=stage.padding), up.leaky_slope)
    return x.squeeze(1)


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
