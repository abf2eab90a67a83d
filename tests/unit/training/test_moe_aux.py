"""The MoE aux loss's weight: `loss_units` is the count every loss returns, known before the
forward pass, and the per-micro-batch coefficient makes the step's aux term the units-weighted
mean of the micro-batches' aux losses."""

import pytest
import torch

from megatron_o1p.losses import dpo_loss, length_harmonizing_loss, loss_units, sft_loss
from megatron_o1p.training.moe_aux import aux_loss_coeff


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(3, 7, generator=g) > 0.3).float()
    logprobs = -torch.rand(3, 7, generator=g)
    return logprobs, mask, torch.randn(3, generator=g)


@pytest.mark.parametrize(
    "ratio, aggregation", [("token", "seq-mean"), ("token", "token-mean"), ("sequence", "seq-mean")]
)
def test_units_are_the_o1_pruner_count(ratio, aggregation):
    logprobs, mask, advantages = _batch()
    _, metrics = length_harmonizing_loss(
        logprobs, logprobs.detach() - 0.1, advantages, mask, ratio=ratio, aggregation=aggregation
    )
    units = loss_units("o1-pruner", loss_mask=mask, sequences=3, ratio=ratio,
                       aggregation=aggregation)  # fmt: skip
    assert units == float(metrics["count"])


def test_units_are_the_sft_and_dpo_counts():
    logprobs, mask, _ = _batch(1)
    assert loss_units("sft", loss_mask=mask, sequences=3) == float(
        sft_loss(logprobs, mask)[1]["count"]
    )
    seq = torch.randn(4)
    count = dpo_loss(seq[:2], seq[2:], seq[:2] - 1, seq[2:] + 1)[1]["count"]
    assert loss_units("dpo", loss_mask=mask, sequences=4) == float(count) == 2.0


def test_coefficient_weighs_micro_batches_by_their_units():
    """megatron adds coef_m x aux_m x routed_tokens_m per micro-batch, then divides every
    gradient by the step's units: with coef_m from `aux_loss_coeff` the aux term is
    coef x sum(units_m aux_m) / sum(units_m), by hand for two micro-batches."""
    coef, units, routed, aux = 0.01, [3.0, 1.0], [640, 96], [1.2, 2.0]
    added = sum(aux_loss_coeff(coef, u, t) * a * t for u, t, a in zip(units, routed, aux))
    assert added / sum(units) == pytest.approx(coef * (3 * 1.2 + 1 * 2.0) / 4)
    assert aux_loss_coeff(coef, 2.0, 0) == pytest.approx(0.02)  # no division by zero
