"""Mu-law companding and quantisation against the closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavediff.models.wavenet.mulaw import mulaw_compress, mulaw_decode, mulaw_encode, mulaw_expand


def test_compression_is_the_closed_form():
    x = np.linspace(-1, 1, 101)
    expected = np.sign(x) * np.log(1 + 255 * np.abs(x)) / np.log(256)
    np.testing.assert_allclose(mulaw_compress(torch.tensor(x)).numpy(), expected, atol=1e-12)
    assert mulaw_compress(torch.tensor([0.5])).item() == pytest.approx(math.log(128.5) / math.log(256))
    np.testing.assert_allclose(mulaw_expand(mulaw_compress(torch.tensor(x))).numpy(), x, atol=1e-12)


def test_classes_of_known_values_and_the_round_trip_of_every_class():
    assert mulaw_encode(torch.tensor([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
    classes = torch.arange(256)
    assert torch.equal(mulaw_encode(mulaw_decode(classes)), classes)
    # class q decodes to the expansion of its level 2q/255 - 1
    q = torch.tensor([0, 64, 200])
    level = 2 * q.double() / 255 - 1
    expected = torch.sign(level) * (256 ** level.abs() - 1) / 255
    torch.testing.assert_close(mulaw_decode(q).double(), expected, atol=1e-6, rtol=0)


def test_quantisation_error_is_finest_near_zero():
    x = torch.tensor([0.001, 0.9])
    err = (mulaw_decode(mulaw_encode(x)) - x).abs()
    # bin width of the companded scale is 2/255; at x the audio bin is that times dx/dy
    dxdy = (1 + 255 * x.abs()) * math.log(256) / 255
    assert (err <= dxdy * (1 / 255) * 1.01).all()
    assert err[0] < 1e-4 < err[1]
