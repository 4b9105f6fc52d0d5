"""Summaries of per-utterance scores: mean with a Student-t 95% confidence interval."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Mean of ``n`` finite values and the half-width of its 95% confidence interval.

    ``ci95`` is ``t_{0.975, n-1} · s / sqrt(n)`` (``s`` the sample standard deviation),
    NaN for ``n < 2``; ``mean`` is NaN for ``n = 0``. Non-finite values (a metric that could
    not score an utterance, such as PESQ on silence) are left out and counted in ``skipped``.
    """

    mean: float
    ci95: float
    n: int
    skipped: int = 0

    def to_dict(self) -> dict[str, float | int | None]:
        def clean(v: float) -> float | None:
            return None if not math.isfinite(v) else float(v)

        return {"mean": clean(self.mean), "ci95": clean(self.ci95), "n": self.n, "skipped": self.skipped}


def summarise(values: Iterable[float]) -> Summary:
    """:class:`Summary` of ``values``, ignoring NaN and Inf."""
    from scipy import stats

    arr = np.asarray(list(values), dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    n = int(finite.shape[0])
    skipped = int(arr.shape[0] - n)
    if n == 0:
        return Summary(float("nan"), float("nan"), 0, skipped)
    mean = float(finite.mean())
    if n < 2:
        return Summary(mean, float("nan"), n, skipped)
    sem = float(finite.std(ddof=1)) / math.sqrt(n)
    return Summary(mean, float(stats.t.ppf(0.975, n - 1)) * sem, n, skipped)
