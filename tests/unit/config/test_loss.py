"""LossConfig.ratio_warning: `--ratio sequence` (the official code's length-normalised ratio)
gets one warning line naming what it did in the demo's ablation and the safe setting; the
default token ratios, and losses that use no ratio, get none."""

import pytest

from megatron_o1p.config.loss import SEQUENCE_RATIO_WARNING, LossConfig


def test_the_sequence_ratio_warns_in_one_line():
    warning = LossConfig(ratio="sequence").ratio_warning()
    assert warning == SEQUENCE_RATIO_WARNING
    assert warning.startswith("warning: --ratio sequence") and "\n" not in warning
    # what the ablation measured, and what to use instead
    for fact in ("geometric mean", "blind shortening", "14.4%", "2.4%", "-1.71", "0.21"):
        assert fact in warning
    assert "--ratio token --loss-aggregation seq-mean" in warning


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ratio": "token", "loss_aggregation": "token-mean"},
        {"loss": "sft", "ratio": "sequence"},
        {"loss": "dpo", "ratio": "sequence"},
    ],
)
def test_safe_or_ratio_free_settings_do_not_warn(kwargs):
    assert LossConfig(**kwargs).ratio_warning() is None
