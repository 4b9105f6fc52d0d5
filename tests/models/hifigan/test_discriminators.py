"""wavediff.models.hifigan.discriminators: the period folding and the scale pooling on known
signals, the branches the config asks for with their logits and feature maps, the published
sizes (MPD 41.1M, MSD 29.6M) and the width setting."""
from __future__ import annotations

import pytest
import torch

from wavediff.config import HiFiGANConfig
from wavediff.models.hifigan import HiFiGANDiscriminators, count_parameters, fold_periods, pool_scale


def test_period_folding_puts_every_pth_sample_in_a_column():
    audio = torch.arange(12.0).reshape(1, 12)
    folded = fold_periods(audio, 3)
    assert folded.shape == (1, 1, 4, 3)
    assert folded[0, 0, :, 1].tolist() == [1.0, 4.0, 7.0, 10.0]           # column j: samples j, j+p, ...
    padded = fold_periods(torch.arange(10.0).reshape(1, 10), 4)            # 10 -> 12 by reflection
    assert padded.shape == (1, 1, 3, 4) and padded[0, 0, 2].tolist() == [8.0, 9.0, 8.0, 7.0]


def test_scale_pooling_is_a_four_sample_mean_with_zero_padding():
    audio = torch.arange(1.0, 9.0).reshape(1, 8)                           # 1..8
    pooled = pool_scale(audio)
    # windows start at -2, 0, 2, 4, 6 (stride 2, two zeros each side, divided by 4 always)
    assert pooled.tolist() == [[(0 + 0 + 1 + 2) / 4, (1 + 2 + 3 + 4) / 4, (3 + 4 + 5 + 6) / 4, (5 + 6 + 7 + 8) / 4,
                                (7 + 8 + 0 + 0) / 4]]


def test_branches_logits_and_features():
    config = HiFiGANConfig(periods=(2, 3), scales=2, discriminator_width=0.125)
    torch.manual_seed(0)
    d = HiFiGANDiscriminators(config)
    logits, features = d(torch.randn(3, 2048))
    assert len(logits) == len(features) == 4
    assert all(x.shape[0] == 3 and x.dim() == 2 for x in logits)
    assert [len(f) for f in features] == [6, 6, 8, 8]                     # every layer's map and the output
    # the second scale branch sees the audio pooled once: about half the first's logits
    assert logits[3].shape[1] == pytest.approx(logits[2].shape[1] / 2, abs=1)


def test_the_full_size_discriminators_have_the_published_sizes():
    d = HiFiGANDiscriminators(HiFiGANConfig())
    assert round(count_parameters(d.periods) / 1e6, 1) == 41.1
    assert round(count_parameters(d.scales) / 1e6, 1) == 29.6
    small = HiFiGANDiscriminators(HiFiGANConfig(discriminator_width=0.25))
    assert count_parameters(small) < count_parameters(d) / 10             # channels / 4: weights about / 16
