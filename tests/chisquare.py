"""Chi-square goodness of fit, for the share tests."""
from __future__ import annotations

import math
from collections import Counter

Z_ONE_IN_10000 = 3.719  # one-sided normal quantile for p = 0.0001: a false alarm once in 10,000 runs


def chi2_critical(df: int, z: float = Z_ONE_IN_10000) -> float:
    """Wilson-Hilferty approximation of the chi-square quantile (good to ~1% for df >= 2)."""
    h = 2 / (9 * df)
    return df * (1 - h + z * math.sqrt(h)) ** 3


def chi2(observed: Counter, weights: dict[str, int]) -> float:
    n = sum(observed.values())
    total = sum(weights.values())
    return sum((observed.get(k, 0) - n * w / total) ** 2 / (n * w / total) for k, w in weights.items())
