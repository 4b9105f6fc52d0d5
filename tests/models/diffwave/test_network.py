"""wavediff.models.diffwave.network: sizes from the references, receptive fields (formula and
measured), shapes per conditioning mode, named conditioning errors."""
from __future__ import annotations

import pytest
import torch

from wavediff.config import ModelConfig, load_config
from wavediff.errors import WavediffError
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
