"""Uncertainty of an accuracy and of a paired difference of two accuracies (pure math).

- `wilson_interval(k, n)`: the Wilson score interval of a binomial proportion k/n. Unlike the
  normal ("Wald") interval p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and does not collapse
  to a point at p = 0 or 1, which matters at the 99% accuracies of the demo's easy levels.
- `mcnemar_exact(b, c)`: the exact two-sided McNemar test of two models graded on the same
  items, where b items only the first got right and c only the second. Items both got right
  or both got wrong carry no information about the difference; under "no difference" each
  discordant item is a fair coin, so p = P(Binomial(b + c, 1/2) as far from the middle).

Tested by tests/unit/evaluation/test_stats.py (values computed by hand).
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054
"""The two-sided 95% normal quantile."""


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for k successes in n trials."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (1.0 when b = c = 0)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def discordant(first: list[bool], second: list[bool]) -> tuple[int, int]:
    """(items only `first` got right, items only `second` got right), paired by position."""
    if len(first) != len(second):
        raise ValueError(f"paired results differ in length: {len(first)} vs {len(second)}")
    only_first = sum(1 for a, b in zip(first, second) if a and not b)
    only_second = sum(1 for a, b in zip(first, second) if b and not a)
    return only_first, only_second


def avoidable_removed(baseline: float, oracle: float, model: float) -> float:
    """Share of the avoidable tokens removed: (baseline - model) / (baseline - oracle).

    1.0 = the model is as short as the oracle, 0.0 = as long as the baseline; it can exceed 1
    (shorter than the oracle: it also drops needed checks) or be negative (longer). NaN when
    the baseline is already at the oracle (nothing to remove).
    """
    avoidable = baseline - oracle
    return (baseline - model) / avoidable if avoidable > 0 else math.nan
