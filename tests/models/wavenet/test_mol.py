"""The discretised mixture of logistics against hand-computed masses and sampling statistics."""
from __future__ import annotations

import math

import pytest
import torch

from wavediff.models.wavenet.mol import mol_log_likelihood, mol_sample


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _params(logits, means, log_scales, length=1):
    """(1, 3K, length) from per-component lists."""
    p = torch.tensor([*logits, *means, *log_scales], dtype=torch.float64)
    return p.view(1, -1, 1).expand(1, -1, length).clone()


def test_one_logistic_on_four_levels_matches_the_hand_computed_masses():
    # bits=2: levels -1, -1/3, 1/3, 1, half bin 1/3; mean 0, scale 1
    params = _params([0.0], [0.0], [0.0], length=4)
    levels = torch.tensor([[-1.0, -1 / 3, 1 / 3, 1.0]], dtype=torch.float64)
    expected = [_sigmoid(-2 / 3), _sigmoid(0) - _sigmoid(-2 / 3), _sigmoid(2 / 3) - _sigmoid(0), 1 - _sigmoid(2 / 3)]
    got = mol_log_likelihood(params, levels, mixtures=1, bits=2).exp()[0]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-9, rtol=0)
    assert got.sum().item() == pytest.approx(1.0, abs=1e-9)


def test_a_mixture_weighs_its_components_by_the_softmax_of_the_logits():
    # weights softmax(0, ln 3) = 1/4, 3/4; components at -0.5 (scale e^-1) and 0.5 (scale 1)
    params = _params([0.0, math.log(3)], [-0.5, 0.5], [-1.0, 0.0])
    x = torch.tensor([[1 / 3]], dtype=torch.float64)
    h = 1 / 3

    def mass(mu, s):
        return _sigmoid((1 / 3 + h - mu) / s) - _sigmoid((1 / 3 - h - mu) / s)

    expected = 0.25 * mass(-0.5, math.exp(-1)) + 0.75 * mass(0.5, 1.0)
    assert mol_log_likelihood(params, x, mixtures=2, bits=2).exp().item() == pytest.approx(expected, rel=1e-9)


def test_sixteen_bit_mass_of_a_narrow_logistic_at_its_mean():
    # mean 0, log-scale -7 (the floor): the bin at 0 holds sigma(h/s) - sigma(-h/s) of the mass
    params = _params([0.0], [0.0], [-7.0])
    h, s = 1 / 65535, math.exp(-7)
    expected = _sigmoid(h / s) - _sigmoid(-h / s)
    got = mol_log_likelihood(params, torch.zeros(1, 1, dtype=torch.float64), mixtures=1).exp().item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_samples_follow_the_logistic_and_the_mixture_weights():
    n = 40000
    g = torch.Generator().manual_seed(0)
    params = _params([0.0], [0.1], [math.log(0.05)], length=n)
    x = mol_sample(params.float(), 1, generator=g)[0]
    # P(X <= mu + s ln 3) = sigma(ln 3) = 3/4 for a logistic
    assert (x <= 0.1 + 0.05 * math.log(3)).float().mean().item() == pytest.approx(0.75, abs=0.01)
    assert x.median().item() == pytest.approx(0.1, abs=0.005)
    two = _params([0.0, math.log(3)], [-0.6, 0.6], [math.log(0.01)] * 2, length=n)
    y = mol_sample(two.float(), 2, generator=g)[0]
    assert (y > 0).float().mean().item() == pytest.approx(0.75, abs=0.01)
    torch.manual_seed(1)
    assert torch.equal(mol_sample(two.float(), 2, generator=torch.Generator().manual_seed(5)),
                       mol_sample(two.float(), 2, generator=torch.Generator().manual_seed(5)))
