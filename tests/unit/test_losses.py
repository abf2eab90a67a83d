"""Losses against hand-computed values, a direct transcription of eq. 11, gradcheck, and the
step-0 gradient."""

import math

import pytest
import torch

from megatron_o1p.errors import ConfigError
from megatron_o1p.losses import dpo_loss, length_harmonizing_loss, sft_loss

# Two sequences of two tokens; the second sequence's second token is padding.
#   seq 0: log-ratios [0, ln 1.5] -> r = [1, 1.5], A = +1 -> min(rA, clip(r)A) = [1, 1.2]
#   seq 1: log-ratios [ln 0.5, -] -> r = [0.5],    A = -2 -> min(-1, 0.8 * -2)  = [-1.6]
REF = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=torch.float64)
LOGP = REF + torch.tensor([[0.0, math.log(1.5)], [math.log(0.5), 0.7]], dtype=torch.float64)
ADV = torch.tensor([1.0, -2.0], dtype=torch.float64)
MASK = torch.tensor([[1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    "ratio, aggregation, expected",
    [
        ("token", "seq-mean", -((1 + 1.2) / 2 + -1.6) / 2),  # 0.25
        ("token", "token-mean", -(1 + 1.2 - 1.6) / 3),  # -0.2
        # seq 0: r = exp(ln(1.5)/2) = 1.2247 -> clipped 1.2; seq 1: r = 0.5, A = -2 -> -1.6
        ("sequence", "seq-mean", -(1.2 - 1.6) / 2),  # 0.2
    ],
)
def test_hand_computed(ratio, aggregation, expected):
    loss, metrics = length_harmonizing_loss(
        LOGP, REF, ADV, MASK, ratio=ratio, aggregation=aggregation
    )
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_clip_fraction_and_ratio_metrics():
    _, metrics = length_harmonizing_loss(LOGP, REF, ADV, MASK)
    clipped, units = metrics["loss/clip_frac"]
    assert (clipped.item(), units.item()) == (2.0, 3.0)  # 1.5 -> 1.2 and 0.5 -> 0.8 are clipped
    ratio_sum, _ = metrics["loss/ratio_mean"]
    assert ratio_sum.item() == pytest.approx(1 + 1.5 + 0.5)
    kl_sum, _ = metrics["loss/approx_kl"]
    expected_kl = (1.5 - 1 - math.log(1.5)) + (0.5 - 1 - math.log(0.5))
    assert kl_sum.item() == pytest.approx(expected_kl)
    assert metrics["count"].item() == 2


def test_asymmetric_clip():
    # with eps_high = 0.6 the 1.5 ratio is inside the range: seq 0 -> (1 + 1.5) / 2
    loss, _ = length_harmonizing_loss(LOGP, REF, ADV, MASK, epsilon=0.2, epsilon_high=0.6)
    assert loss.item() == pytest.approx(-((1 + 1.5) / 2 - 1.6) / 2)


def _eq11_transcription(logp, ref, adv, mask, eps):
    """Eq. 11, written out per sequence with python floats: mean over y of the mean over its
    tokens of min(r A, clip(r, 1-eps, 1+eps) A), negated."""
    total = 0.0
    for b in range(len(logp)):
        terms = []
        for t in range(len(logp[b])):
            if mask[b][t]:
                r = math.exp(logp[b][t] - ref[b][t])
                a = adv[b]
                terms.append(min(r * a, min(max(r, 1 - eps), 1 + eps) * a))
        total += sum(terms) / len(terms)
    return -total / len(logp)


def test_matches_eq11_transcription_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    ref = -torch.rand(6, 9, generator=g, dtype=torch.float64) * 5
    logp = ref + torch.randn(6, 9, generator=g, dtype=torch.float64) * 0.3
    adv = torch.randn(6, generator=g, dtype=torch.float64)
    mask = (torch.rand(6, 9, generator=g) > 0.3).double()
    mask[:, 0] = 1
    loss, _ = length_harmonizing_loss(logp, ref, adv, mask, epsilon=0.2)
    expected = _eq11_transcription(logp.tolist(), ref.tolist(), adv.tolist(), mask.tolist(), 0.2)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("ratio, aggregation", [("token", "seq-mean"), ("token", "token-mean"),
                                                ("sequence", "seq-mean")])  # fmt: skip
def test_gradcheck(ratio, aggregation):
    g = torch.Generator().manual_seed(1)
    ref = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3
    # keep ratios away from the clip kinks, where the loss is not differentiable
    noise = torch.tensor([0.05, -0.05, 0.5, -0.5, 0.02], dtype=torch.float64)
    logp = (ref + noise).requires_grad_()
    adv = torch.tensor([0.7, -1.3, 0.4], dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.float64)
    mask[2, 3:] = 0

    def fn(x):
        return length_harmonizing_loss(x, ref, adv, mask, ratio=ratio, aggregation=aggregation)[0]

    assert torch.autograd.gradcheck(fn, (logp,))


@pytest.mark.parametrize("aggregation", ["seq-mean", "token-mean"])
def test_step_zero_gradient_is_advantage_weighted_logprob_gradient(aggregation):
    """At step 0 (logp == ref) r = 1 and d loss / d logp_t = -A_b * w_bt, with w the
    aggregation's weights: 1 / (|y_b| * B) for seq-mean, 1 / (total tokens) for token-mean."""
    ref = -torch.rand(3, 4, dtype=torch.float64)
    logp = ref.clone().requires_grad_()
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    loss, metrics = length_harmonizing_loss(logp, ref, adv, mask, aggregation=aggregation)
    loss.backward()
    if aggregation == "seq-mean":
        weights = mask / mask.sum(-1, keepdim=True) / 3
    else:
        weights = mask / mask.sum()
    assert torch.allclose(logp.grad, -adv[:, None] * weights)
    assert metrics["loss/ratio_mean"][0].item() == pytest.approx(
        metrics["loss/ratio_mean"][1].item()
    )
    assert metrics["loss/clip_frac"][0].item() == 0


def test_global_normalizer_makes_micro_batches_exact():
    """Two micro-batches normalised by the step's global count sum to the full-batch loss."""
    g = torch.Generator().manual_seed(2)
    ref = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    logp = ref + 0.1 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 6, generator=g) > 0.4).double()
    mask[:, 0] = 1
    for aggregation in ("seq-mean", "token-mean"):
        full, metrics = length_harmonizing_loss(logp, ref, adv, mask, aggregation=aggregation)
        halves = [
            length_harmonizing_loss(logp[s], ref[s], adv[s], mask[s], aggregation=aggregation,
                                    normalizer=metrics["count"])[0]
            for s in (slice(0, 2), slice(2, 4))
        ]  # fmt: skip
        assert (halves[0] + halves[1]).item() == pytest.approx(full.item(), abs=1e-12)


def test_bad_options():
    with pytest.raises(ConfigError, match="--ratio 'word'"):
        length_harmonizing_loss(LOGP, REF, ADV, MASK, ratio="word")
    with pytest.raises(ConfigError, match="--loss-aggregation"):
        length_harmonizing_loss(LOGP, REF, ADV, MASK, aggregation="sum")


def test_sft_loss_is_token_mean_nll():
    loss, metrics = sft_loss(LOGP, MASK)
    assert loss.item() == pytest.approx(-(LOGP[0, 0] + LOGP[0, 1] + LOGP[1, 0]).item() / 3)
    assert metrics["count"].item() == 3


def test_dpo_loss_hand_computed():
    pc, pr = torch.tensor([-10.0, -5.0]), torch.tensor([-12.0, -4.0])
    rc, rr = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -5.0])
    # margins: (1 - -1) = 2 and (0 - 1) = -1; beta 0.5
    loss, metrics = dpo_loss(pc, pr, rc, rr, beta=0.5)
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["dpo/reward_accuracy"][0].item() == 1.0
