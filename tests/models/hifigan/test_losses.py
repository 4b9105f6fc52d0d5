"""wavediff.models.hifigan.losses against values computed by hand."""
from __future__ import annotations

import pytest
import torch

from wavediff.models.hifigan.losses import (discriminator_loss, feature_matching_loss, generator_adversarial_loss,
                                            mel_loss)


def test_least_squares_losses_by_hand():
    real = [torch.tensor([[1.0, 0.5]]), torch.tensor([[0.0]])]
    fake = [torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5]])]
    # D: mean((1-r)^2) + mean(f^2) per branch: (0 + 0.25)/2 + (0 + 1)/2 ; (1) + (0.25)
    assert float(discriminator_loss(real, fake)) == pytest.approx(0.125 + 0.5 + 1.0 + 0.25)
    # G: mean((1-f)^2): (1 + 0)/2 ; 0.25
    assert float(generator_adversarial_loss(fake)) == pytest.approx(0.5 + 0.25)


def test_feature_matching_sums_each_maps_mean_absolute_difference_and_stops_real_gradients():
    real = [[torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[0.0]], requires_grad=True)]]
    fake = [[torch.tensor([0.0, 4.0], requires_grad=True), torch.tensor([[-3.0]], requires_grad=True)]]
    loss = feature_matching_loss(real, fake)
    assert float(loss.detach()) == pytest.approx((1 + 2) / 2 + 3)
    loss.backward()
    # d|r - f|/df = sign(f - r), over the map's 2 elements
    assert real[0][0].grad is None and fake[0][0].grad.tolist() == [-0.5, 0.5]


def test_mel_loss_and_mismatched_branches():
    assert float(mel_loss(torch.zeros(2, 3), torch.full((2, 3), -0.5))) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        discriminator_loss([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)])
