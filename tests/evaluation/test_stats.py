"""wavediff.evaluation.stats: the mean and its 95% t interval against the closed form (NaN scores skipped and counted)."""
from __future__ import annotations

import math

import pytest

from wavediff.evaluation.stats import summarise


def test_summary_mean_and_t_interval():
    s = summarise([1.0, 2.0, 3.0, 4.0, float("nan")])
    # sd = sqrt(5/3), t(0.975, 3) = 3.182446
    assert s.mean == pytest.approx(2.5)
    assert s.ci95 == pytest.approx(3.182446 * math.sqrt(5 / 3) / 2, rel=1e-5)
    assert (s.n, s.skipped) == (4, 1)
    assert math.isnan(summarise([1.0]).ci95) and math.isnan(summarise([]).mean)
