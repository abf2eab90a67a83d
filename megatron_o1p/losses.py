"""The O1-Pruner objective (paper eq. 11) and the baselines' losses. Pure torch, no groups.

Shapes: `logprobs`, `ref_logprobs`, `loss_mask` [B, T] (response tokens only in the mask),
`advantages` [B] (the R_LH rewards of eq. 8-10, already clipped and normalised upstream).

Eq. 11 maximises E_y[ min(r A, clip(r, 1-eps, 1+eps) A) ] with r = pi_theta(y|x) / pi_ref(y|x).
We implement it three ways:

- ratio="token", aggregation="seq-mean" (default): r_t = exp(logp_t - ref_t) per token; each
  sequence's clipped objective is averaged over its tokens, then sequences are averaged, so every
  sampled y weighs the same, as the expectation over y in eq. 11 does.
- ratio="token", aggregation="token-mean" (DAPO-style): one average over all tokens of the step.
  Long sequences then weigh more, which double-counts length on top of R_LH; in one toy run it
  collapsed accuracy at a learning rate where seq-mean did not.
- ratio="sequence": the official code's length-normalised sequence ratio
  r_b = exp(mean_t(logp_t - ref_t)), one clipped term per sequence.

Every loss returns (loss, metrics). `loss` is the sum of the per-unit terms divided by
`normalizer`; pass the GLOBAL count of units (sequences or tokens) of the optimizer step so
gradient accumulation and data parallelism stay exact; by default it is the local count.
`metrics` maps a name to a (sum, count) pair so averages reduce exactly across micro-batches and
ranks. `count` is this micro-batch's number of units (what the normaliser must add up).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from megatron_o1p.errors import ConfigError

RATIOS = ("token", "sequence")
AGGREGATIONS = ("seq-mean", "token-mean")
# exp() of a log-ratio above this is clipped anyway; capping it keeps r finite in fp32.
_MAX_LOG_RATIO = 20.0


def _clipped_objective(ratio, advantages, eps_low: float, eps_high: float):
    """min(r A, clip(r, 1-eps_low, 1+eps_high) A) and where the clipped branch was taken."""
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages
    return torch.minimum(unclipped, clipped), (clipped < unclipped)


def length_harmonizing_loss(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    ratio: str = "token",
    aggregation: str = "seq-mean",
    normalizer: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """PPO-clipped length-harmonizing loss (eq. 11), to minimise.

    Args:
        logprobs: [B, T] fp32 log pi_theta(y_t | x, y_<t), with grad.
        ref_logprobs: [B, T] fp32 log pi_ref of the same tokens (precomputed, no grad).
        advantages: [B] fp32 per-sequence advantage (normalised R_LH).
        loss_mask: [B, T] 1 on response tokens, 0 on prompt and padding.
        epsilon: clip range below 1 (and above, unless `epsilon_high`).
        epsilon_high: clip range above 1 (asymmetric clipping); None = `epsilon`.
        ratio: "token" or "sequence" (see module docstring).
        aggregation: "seq-mean" or "token-mean" (ratio="token" only).
        normalizer: divide the summed objective by this; None = this batch's unit count.

    Returns:
        (loss, metrics): loss is a scalar; metrics has `count` and (sum, count) pairs
        `loss/clip_frac`, `loss/ratio_mean`, `loss/approx_kl`.
    """
    if ratio not in RATIOS:
        raise ConfigError(f"--ratio {ratio!r}: choose one of {', '.join(RATIOS)}")
    if aggregation not in AGGREGATIONS:
        raise ConfigError(f"--loss-aggregation {aggregation!r}: choose {', '.join(AGGREGATIONS)}")
    eps_high = epsilon if epsilon_high is None else epsilon_high
    mask = loss_mask.to(logprobs.dtype)
    tokens_per_seq = mask.sum(-1).clamp(min=1)
    log_ratio = ((logprobs - ref_logprobs) * mask).clamp(max=_MAX_LOG_RATIO)

    if ratio == "sequence":
        seq_log_ratio = log_ratio.sum(-1) / tokens_per_seq
        r = torch.exp(seq_log_ratio)
        objective, clipped = _clipped_objective(r, advantages, epsilon, eps_high)
        total, count = objective.sum(), torch.tensor(float(objective.numel()))
        unit_mask, unit_ratio, unit_log_ratio = torch.ones_like(r), r, seq_log_ratio
    else:
        r = torch.exp(log_ratio)
        objective, clipped = _clipped_objective(r, advantages[:, None], epsilon, eps_high)
        objective = objective * mask
        if aggregation == "seq-mean":
            total = (objective.sum(-1) / tokens_per_seq).sum()
            count = torch.tensor(float(objective.shape[0]))
        else:
            total, count = objective.sum(), mask.sum().detach()
        unit_mask, unit_ratio, unit_log_ratio = mask, r, log_ratio

    normalizer = count if normalizer is None else normalizer
    loss = -total / normalizer
    with torch.no_grad():
        units = unit_mask.sum()
        approx_kl = (unit_ratio - 1.0) - unit_log_ratio  # k3 estimator of KL(ref || theta)
        metrics = {
            "count": count,
            "loss/clip_frac": ((clipped.float() * unit_mask).sum(), units),
            "loss/ratio_mean": ((unit_ratio * unit_mask).sum(), units),
            "loss/approx_kl": ((approx_kl * unit_mask).sum(), units),
        }
    return loss, metrics


def loss_units(
    loss: str, *, loss_mask: torch.Tensor, sequences: int, ratio="token", aggregation="seq-mean"
) -> float:
    """The `count` the loss `loss` ("o1-pruner", "sft", "dpo") returns for a micro-batch of
    `sequences` sequences (DPO: chosen then rejected) whose response tokens `loss_mask` marks,
    known before the forward pass (the MoE aux loss is weighed by it: training/moe_aux.py)."""
    if loss == "dpo":
        return float(sequences // 2)
    if loss == "o1-pruner" and (ratio == "sequence" or aggregation == "seq-mean"):
        return float(sequences)
    return float(loss_mask.sum())


def sft_loss(logprobs, loss_mask, *, normalizer=None) -> tuple[torch.Tensor, dict]:
    """Token-mean negative log-likelihood (the paper's SFT-on-shortest baseline).

    Args:
        logprobs: [B, T] fp32 log-probs of the target tokens, with grad.
        loss_mask: [B, T] 1 on tokens to learn.
        normalizer: global token count of the step; None = this batch's.
    """
    mask = loss_mask.to(logprobs.dtype)
    count = mask.sum().detach()
    total = -(logprobs * mask).sum()
    loss = total / (count.clamp(min=1) if normalizer is None else normalizer)
    return loss, {"count": count, "loss/nll": (total.detach(), count)}


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    *,
    beta: float = 0.1,
    normalizer=None,
) -> tuple[torch.Tensor, dict]:
    """Sigmoid DPO (Rafailov et al., 2023) on sequence log-prob sums [B] (the DPO baseline).

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))), averaged over pairs.
    """
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    losses = -F.logsigmoid(beta * margin)
    count = torch.tensor(float(losses.numel()))
    loss = losses.sum() / (count if normalizer is None else normalizer)
    with torch.no_grad():
        metrics = {
            "count": count,
            "dpo/reward_accuracy": ((margin > 0).float().sum(), count),
            "dpo/margin": ((beta * margin).sum(), count),
        }
    return loss, metrics
