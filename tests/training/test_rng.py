"""wavediff.training.rng: the global generators captured as tensors and restored draw the same
numbers again (torch, numpy, Python's random with its cached Gaussian)."""
from __future__ import annotations

import io
import random

import numpy as np
import torch

from wavediff.training.rng import capture_rng_state, restore_rng_state


def _draws() -> tuple:
    return (torch.rand(4).tolist(), np.random.rand(3).tolist(), np.random.standard_normal(),
            random.random(), random.gauss(0, 1))


def test_restored_generators_repeat_their_draws():
    random.gauss(0, 1)                       # leaves one cached Gaussian in Python's generator
    np.random.standard_normal()              # and one in numpy's
    state = capture_rng_state()
    first = _draws()
    restore_rng_state(state)
    assert _draws() == first


def test_the_state_is_tensors_that_load_without_unpickling():
    state = capture_rng_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    first = _draws()
    restore_rng_state(loaded)
    assert _draws() == first
    assert all(isinstance(v, torch.Tensor) for v in state.values())
