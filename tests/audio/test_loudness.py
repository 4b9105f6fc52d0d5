"""wavediff.audio.loudness: the peak gain ``level / max |x|`` in closed form."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wavediff.audio.loudness import peak_gain


def test_peak_gain_in_closed_form():
    x = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    assert peak_gain(x) == pytest.approx(0.95 / 0.4)
    assert peak_gain(x, 0.5) == pytest.approx(1.25)
    assert peak_gain(np.zeros(5, dtype=np.float32)) == 1.0
    assert peak_gain(torch.tensor([0.0, 2.0])) == pytest.approx(0.475)
