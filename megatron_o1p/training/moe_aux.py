"""The mixture-of-experts load-balancing loss in training: its weight and its logs.

megatron's router adds `moe_aux_loss_coeff x aux` to the gradients (an autograd scaler on its
probabilities) and, with `calculate_per_token_loss` (ours: `hf_config.transformer_config`),
multiplies it by the micro-batch's routed tokens, expecting the schedule's final division by
the step's total count to be a division by total tokens. Our losses count units of their own
(sequences for seq-mean, pairs for DPO: `losses.loss_units`), so with the coefficient as it is
the aux loss of a step of 3k-token sequences would weigh about 3000 times HF's
`router_aux_loss_coef`. `weigh_aux_loss` sets the coefficient of each micro-batch to

    coef x units(micro-batch) / routed tokens(micro-batch)

which the router reads at its forward, so that the step's objective is exactly

    loss + coef x sum_m units_m aux_m / sum_m units_m

the loss's own weighting of micro-batches applied to their aux losses (with equal micro-batches,
the mean aux loss), at any data, tensor, pipeline or expert parallel size.

`step_metrics` reads megatron's per-layer tracker of the (unweighted) load-balancing loss after
the step's forward/backward, reduced over ranks by megatron, and clears it: `moe/aux_loss` (the
layers' sum, times the coefficient: what the step added to the objective, for equal
micro-batches) and `moe/load_balance/layer_{i}` (1.0 when every expert gets its share of
tokens and probability; its maximum is num_experts / top-k, all tokens on top-k experts).

Tested by tests/unit/training/test_moe_aux.py and tests/distributed/test_moe.py.
"""

from __future__ import annotations

from megatron_o1p.losses import loss_units
from megatron_o1p.training.packing import PACKED_KEY

_TRACKED = "load_balancing_loss"
"""The name megatron's router logs the switch load-balancing loss under."""


def aux_loss_coeff(coef: float, units: float, routed_tokens: int) -> float:
    """The `moe_aux_loss_coeff` of one micro-batch (see the module docstring)."""
    return coef * units / max(routed_tokens, 1)


def weigh_aux_loss(model, loss_cfg, coef: float, batch: dict) -> None:
    """Set the router's coefficient for `batch`, the micro-batch `model` is about to run."""
    from megatron.core.utils import get_attr_wrapped_model

    packed = PACKED_KEY in batch
    sequences = batch[PACKED_KEY].shape[0] if packed else batch["tokens"].shape[0]
    units = loss_units(
        loss_cfg.loss,
        loss_mask=batch["loss_mask"],
        sequences=sequences,
        ratio=loss_cfg.ratio,
        aggregation=loss_cfg.loss_aggregation,
    )
    config = get_attr_wrapped_model(model, "config")
    config.moe_aux_loss_coeff = aux_loss_coeff(coef, units, batch["tokens"].numel())


def step_metrics(coef: float, num_micro_batches: int) -> dict[str, float]:
    """`moe/aux_loss` and `moe/load_balance/layer_{i}` of the step just run (the same on
    every rank: a collective, so every rank calls it), and the tracker cleared."""
    from megatron.core.transformer.moe import moe_utils

    tracker = moe_utils.get_moe_layer_wise_logging_tracker()
    if _TRACKED not in tracker:
        return {}
    moe_utils.reduce_aux_losses_tracker_across_ranks([_TRACKED])
    per_layer = tracker[_TRACKED]["values"].detach().float().cpu() / num_micro_batches
    moe_utils.clear_aux_losses_tracker()
    metrics = {"moe/aux_loss": coef * float(per_layer.sum())}
    metrics.update(
        {f"moe/load_balance/layer_{i}": float(v) for i, v in enumerate(per_layer.tolist())}
    )
    return metrics
