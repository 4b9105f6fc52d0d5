"""wavediff.models.hifigan.network: the generator of each published version has the paper's size
(parameters counted with the weight normalisation folded, as the paper counts them: 13.92M,
0.92M and 1.46M, which are the exact counts cut to two decimals), the shape F * hop, output in
[-1, 1], and folding the normalisation leaves the output unchanged."""
from __future__ import annotations

import pytest
import torch

from wavediff.config import HiFiGANConfig
from wavediff.models.hifigan import HiFiGANGenerator, ResidualBlock, count_parameters, fold_weight_norm, folded_copy

V3 = HiFiGANConfig(upsample_rates=(8, 8, 4), upsample_kernels=(16, 16, 8), initial_channels=256, resblock=2,
                   resblock_kernels=(3, 5, 7), resblock_dilations=((1, 2), (2, 6), (3, 12)))
VERSIONS = {   # name: (n_mels, config, parameters folded, the paper's millions)
    "v1": (80, HiFiGANConfig(), 13_926_017, 13.92),
    "v2": (80, HiFiGANConfig(initial_channels=128), 925_985, 0.92),
    "v3": (80, V3, 1_462_273, 1.46),
    "audioldm": (64, HiFiGANConfig(upsample_rates=(5, 4, 2, 2, 2), upsample_kernels=(16, 16, 8, 4, 4),
                                   initial_channels=1024), 55_264_897, None),
}


@pytest.mark.parametrize("name", list(VERSIONS))
def test_each_version_has_the_papers_size(name):
    n_mels, config, folded, paper_millions = VERSIONS[name]
    generator = HiFiGANGenerator(n_mels, config)
    assert count_parameters(fold_weight_norm(generator)) == folded
    if paper_millions is not None:
        assert int(folded / 1e4) / 100 == paper_millions


@pytest.mark.parametrize("name", ["v2", "v3", "audioldm"])
def test_output_is_f_times_hop_samples_in_the_tanh_range(name):
    n_mels, config, _, _ = VERSIONS[name]
    torch.manual_seed(0)
    generator = HiFiGANGenerator(n_mels, config)
    for frames in (1, 7):
        with torch.no_grad():
            out = generator(torch.randn(2, n_mels, frames))
        assert out.shape == (2, frames * config.hop_length)
        assert bool((out.abs() <= 1).all()) and float(out.abs().max()) > 0


def test_residual_blocks_follow_their_closed_forms():
    """Block 1: x + c1(lrelu(c_d(lrelu(x)))) per dilation; block 2: x + c_d(lrelu(x))."""
    torch.manual_seed(2)
    lrelu = torch.nn.functional.leaky_relu
    x = torch.randn(1, 4, 50)
    for kind in (1, 2):
        block = fold_weight_norm(ResidualBlock(4, 3, (1, 3), kind, 0.1))
        want = x
        for i, conv in enumerate(block.dilated):
            y = torch.nn.functional.conv1d(lrelu(want, 0.1), conv.weight, conv.bias, dilation=conv.dilation[0],
                                           padding=conv.dilation[0])
            if kind == 1:
                p = block.plain[i]
                y = torch.nn.functional.conv1d(lrelu(y, 0.1), p.weight, p.bias, padding=1)
            want = want + y
        torch.testing.assert_close(block(x), want)
        assert len(block.plain) == (2 if kind == 1 else 0)


def test_folding_keeps_the_output_and_a_folded_copy_leaves_the_original_working():
    """A deep copy would share torch's parametrised classes, and folding it would break the original."""
    torch.manual_seed(3)
    generator = HiFiGANGenerator(80, HiFiGANConfig(initial_channels=32)).eval()
    mel = torch.randn(1, 80, 5)
    with torch.no_grad():
        before = generator(mel)
        copy = folded_copy(generator)
        torch.testing.assert_close(copy(mel), before, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(generator(mel), before)           # the original still runs, unchanged
        torch.testing.assert_close(folded_copy(copy)(mel), before, rtol=1e-5, atol=1e-6)   # of a folded one too
        torch.testing.assert_close(fold_weight_norm(generator)(mel), before, rtol=1e-5, atol=1e-6)   # in place
    assert not any("parametrizations" in k for k in generator.state_dict())
