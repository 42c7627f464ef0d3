"""Small statistics of the evaluation commands."""

from __future__ import annotations

import math

from torch import Tensor


def mean_and_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval."""
    values = values.double().flatten()
    n = values.numel()
    if n < 2:
        return float(values.mean()), math.nan
    return float(values.mean()), 1.96 * float(values.std(unbiased=True)) / math.sqrt(n)
