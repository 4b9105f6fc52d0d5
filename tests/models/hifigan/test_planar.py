"""wavediff.models.hifigan.planar: the planar, channels-last generator computes what the training
module's 1-D generator computes (weight norm and all), for every published version and for a
stage whose kernel - rate difference is odd; it leaves the generator it copies untouched; and a
CPU vocoding runs it."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from wavediff.config import HiFiGANConfig
from wavediff.models.hifigan import HiFiGANGenerator
from wavediff.models.hifigan.planar import PlanarGenerator
from wavediff.models.hifigan.vocoding import HiFiGANVocoding

V3 = HiFiGANConfig(upsample_rates=(8, 8, 4), upsample_kernels=(16, 16, 8), initial_channels=256, resblock=2,
                   resblock_kernels=(3, 5, 7), resblock_dilations=((1, 2), (2, 6), (3, 12)))
CONFIGS = {
    "v1": (80, HiFiGANConfig()),
    "v3": (80, V3),
    "audioldm-shape": (64, HiFiGANConfig(upsample_rates=(5, 4, 2, 2, 2), upsample_kernels=(16, 16, 8, 4, 4),
                                         initial_channels=64)),
    "odd-kernel-minus-rate": (8, HiFiGANConfig(upsample_rates=(4, 3), upsample_kernels=(9, 6), initial_channels=16,
                                               resblock=2, resblock_kernels=(3,), resblock_dilations=((1, 3),))),
}


def _trained_like(n_mels: int, config: HiFiGANConfig, seed: int) -> HiFiGANGenerator:
    """A generator whose weight-norm gains differ from 1 and whose biases are not zero, so that a
    planar copy that dropped either would show."""
    torch.manual_seed(seed)
    generator = HiFiGANGenerator(n_mels, config)
    with torch.no_grad():
        for name, p in generator.named_parameters():
            if name.endswith("original0") or name.endswith("bias"):
                p.copy_(p * (0.5 + torch.rand_like(p)) + 0.01 * torch.randn_like(p))
    return generator


@pytest.mark.parametrize("name", list(CONFIGS))
def test_planar_generator_equals_the_training_generator(name):
    n_mels, config = CONFIGS[name]
    generator = _trained_like(n_mels, config, seed=3).eval()
    planar = PlanarGenerator(generator).eval()
    mel = torch.randn(2, n_mels, 9) - 2
    with torch.no_grad():
        want = generator(mel)
        got = planar(mel)
    assert got.shape == want.shape == (2, 9 * config.hop_length)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_planar_copy_is_channels_last_2d_and_leaves_the_original_alone():
    n_mels, config = CONFIGS["odd-kernel-minus-rate"]
    generator = _trained_like(n_mels, config, seed=4)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    planar = PlanarGenerator(generator)
    convs = [m for m in planar.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d,
                                                             nn.ConvTranspose2d))]
    assert convs and all(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in convs)
    assert all(m.weight.shape[2] == 1 and m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert not any(parametrize.is_parametrized(m) for m in planar.modules())
    assert any(parametrize.is_parametrized(m, "weight") for m in generator.modules())
    for key, value in generator.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_cpu_vocoding_runs_the_planar_generator_in_each_precision():
    n_mels, config = CONFIGS["v3"]
    generator = _trained_like(n_mels, config, seed=5).eval()
    mel = torch.randn(n_mels, 12) - 2
    with torch.no_grad():
        want = generator(mel[None])[0]
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 0.05)):
        vocoding = HiFiGANVocoding(generator, torch.device("cpu"), precision, "float", 22050)
        assert isinstance(vocoding.generator, PlanarGenerator)
        with torch.no_grad():
            got = vocoding.generate(mel)
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert float((got - want).abs().max()) < tolerance, precision
