"""The Accuracy-Efficiency Score (AES) of O1-Pruner (Luo et al., 2025, sec. 5.1.4, Table 2).

Pure math, no I/O. With the baseline's accuracy Ab and mean length Lb and a model's Am, Lm:

    dLength = (Lb - Lm) / Lb                     (relative length saved)
    dAcc    = (Am - Ab) / Ab                     (RELATIVE accuracy change)
    AES     = alpha * dLength + beta  * |dAcc|   if dAcc >= 0
              alpha * dLength - gamma * |dAcc|   if dAcc <  0

with alpha = 1, beta = 3, gamma = 5 by default (the paper's). dAcc is relative: the paper's text
writes "Acc_model - Acc_baseline", but its Table 2 numbers only come out with the relative
change (e.g. Marco-o1 O1-Pruner on MATH: 1 * (1156 - 657) / 1156 + 3 * (77.5 - 73.8) / 73.8 =
0.58, printed 0.58; the absolute change in percent points would give 11.5).

`paper=True` reproduces Table 2's printed column, which adds beta * |dAcc| even where accuracy
dropped (Marco-o1 DPO on MATH: 73.8 -> 71.8 %, 1156 -> 761 tokens; printed 0.42 =
0.342 + 3 * 0.027, where the stated formula gives 0.342 - 5 * 0.027 = 0.21). The default
follows the stated formula, which penalises accuracy loss.

Zero baselines, where the relative changes are undefined (our choice; the paper never meets
them):
- Ab == 0: dAcc = 0 when Am == 0 too (no change), else +inf (AES = +inf): a model that solves
  anything where the baseline solved nothing has no finite relative gain.
- Lb == 0: dLength = 0 when Lm == 0 too, else -inf (AES = -inf).

The paper's "AVERAGE" columns (checked against every row of Table 2): Acc and Length are the
means of the per-benchmark values, and AES is the mean of the per-benchmark AES values, not the
AES of the averaged Acc and Length (which differs, e.g. Marco-o1 SFT: 0.06 vs the printed 0.08;
see `average_aes`).

Accuracy may be given as a fraction or in percent, as long as baseline and model use the same
unit: only ratios enter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from megatron_o1p.config.flags import Flags, flag
from megatron_o1p.errors import ConfigError

ALPHA, BETA, GAMMA = 1.0, 3.0, 5.0


@dataclass(frozen=True)
class AESWeights(Flags):
    """The AES weights; the paper's defaults. Also the `o1p compare` flags that set them."""

    alpha: float = flag(ALPHA, "AES weight of the relative length reduction")
    """Weight of the relative length reduction."""
    beta: float = flag(BETA, "AES weight of a relative accuracy gain")
    """Weight of a relative accuracy gain."""
    gamma: float = flag(GAMMA, "AES weight of a relative accuracy loss")
    """Weight of a relative accuracy loss (the stated formula; unused with paper=True)."""
    paper: bool = flag(
        False,
        "reproduce the paper's printed Table 2: +beta*|dAcc| even when accuracy drops",
        name="--paper-aes",
    )
    """Reproduce Table 2's printed values: +beta * |dAcc| whatever the sign of dAcc."""

    def __post_init__(self):
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"--{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name} must be a finite number >= 0, got {value}")


def _check(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def delta_length(baseline_length: float, model_length: float) -> float:
    """(Lb - Lm) / Lb: the fraction of the baseline's length saved (negative when longer).

    Lb == 0: 0 when Lm == 0 too, else -inf.
    """
    lb = _check("baseline length", baseline_length)
    lm = _check("model length", model_length)
    if lb == 0:
        return 0.0 if lm == 0 else -math.inf
    return (lb - lm) / lb


def delta_accuracy(baseline_acc: float, model_acc: float) -> float:
    """(Am - Ab) / Ab: the RELATIVE accuracy change.

    Ab == 0: 0 when Am == 0 too, else +inf.
    """
    ab = _check("baseline accuracy", baseline_acc)
    am = _check("model accuracy", model_acc)
    if ab == 0:
        return 0.0 if am == 0 else math.inf
    return (am - ab) / ab


def aes_from_deltas(d_length: float, d_acc: float, weights: AESWeights = AESWeights()) -> float:
    """AES from dLength and dAcc (see the module docstring for the two modes)."""
    if d_acc >= 0 or weights.paper:
        return weights.alpha * d_length + weights.beta * abs(d_acc)
    return weights.alpha * d_length - weights.gamma * abs(d_acc)


def aes(
    baseline_acc: float,
    baseline_length: float,
    model_acc: float,
    model_length: float,
    weights: AESWeights = AESWeights(),
) -> float:
    """The AES of a model against the baseline on one benchmark.

    Args:
        baseline_acc: Ab (fraction or percent; same unit as `model_acc`).
        baseline_length: Lb, mean response tokens (same unit as `model_length`).
        model_acc: Am.
        model_length: Lm.
        weights: alpha, beta, gamma and the mode.

    Returns:
        The score; 0 for the baseline against itself; +-inf for the zero-baseline cases.
    """
    return aes_from_deltas(
        delta_length(baseline_length, model_length),
        delta_accuracy(baseline_acc, model_acc),
        weights,
    )


def average_aes(values: Sequence[float]) -> float:
    """The paper's "AVERAGE" AES: the mean of the per-benchmark AES values."""
    if not values:
        raise ValueError("average_aes needs at least one value")
    return sum(values) / len(values)
