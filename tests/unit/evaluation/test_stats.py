"""Wilson intervals, the exact McNemar test and the avoidable share, against hand values."""

import math

import pytest

from megatron_o1p.evaluation.stats import (
    avoidable_removed,
    discordant,
    mcnemar_exact,
    wilson_interval,
)


def test_wilson_interval_hand_values():
    # k=8, n=10, z=1.96: centre (0.8 + 0.19208)/1.38416 = 0.716738;
    # half 1.96/1.38416 * sqrt(0.016 + 0.009604) = 1.416022 * 0.160012 = 0.226581
    low, high = wilson_interval(8, 10, z=1.96)
    assert low == pytest.approx(0.490157, abs=1e-6)
    assert high == pytest.approx(0.943319, abs=1e-6)


def test_wilson_interval_at_the_edges_is_not_a_point():
    low, high = wilson_interval(0, 10, z=1.96)
    assert low == 0.0 and high == pytest.approx(3.8416 / 13.8416, abs=1e-9)  # z^2/(n+z^2)
    low, high = wilson_interval(10, 10, z=1.96)
    assert high == 1.0 and low == pytest.approx(10 / 13.8416, abs=1e-9)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)


def test_mcnemar_exact_hand_values():
    # b=1, c=5: n=6, P(X<=1) = (1 + 6)/64, two-sided 14/64
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    # b=0, c=10: 2/1024
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(3, 3) == 1.0  # capped: both tails overlap in the middle
    assert mcnemar_exact(0, 0) == 1.0


def test_discordant_pairs_by_position():
    assert discordant([True, True, False, False], [True, False, True, True]) == (1, 2)
    with pytest.raises(ValueError, match="differ in length"):
        discordant([True], [])


def test_avoidable_removed():
    assert avoidable_removed(86.0, 52.0, 52.0) == 1.0
    assert avoidable_removed(86.0, 52.0, 86.0) == 0.0
    assert avoidable_removed(86.0, 52.0, 72.4) == pytest.approx(0.4)
    assert avoidable_removed(86.0, 52.0, 40.0) > 1.0
    assert math.isnan(avoidable_removed(50.0, 52.0, 45.0))
