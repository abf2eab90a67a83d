"""The one adapter between megatron's pipeline schedules and our pure losses.

`make_forward_step(cfg, state)` returns the `forward_step_func` for megatron's
`get_forward_backward_func()`. Each micro-batch is a dict of tensors (batch-first):

    tokens          [b, T] int64   input ids
    position_ids    [b, T] int64
    targets         [b, T] int64   the next token of each position (tokens shifted left)
    loss_mask       [b, T]         1 on response tokens that carry loss
    ref_logprobs    [b, T] fp32    o1-pruner: log pi_ref(target), precomputed
    advantages      [b]    fp32    o1-pruner: normalised R_LH
    ref_seq_logprobs [b]   fp32    dpo: sum of ref log-probs per sequence; rows [0, b/2) are
                                   the chosen responses, rows [b/2, b) the rejected ones

On the last pipeline stage the model returns this rank's vocab shard of the logits,
[b, T, V/TP] (megatron's `GPTModel` transposes to batch-first when no labels are given), or,
where the output layer is wrapped by `output_layout.batch_first_output_layer`, [b, T', V/TP]
for the span T' of positions that carry loss (the loss then reads the same span); the loss runs
there only. The loss function returns megatron's 3-tuple (loss sum, unit count,
report): with `calculate_per_token_loss=True` megatron sums the counts over micro-batches and
data-parallel ranks and divides the gradients by that global count, so seq-mean and
token-mean stay exact under gradient accumulation and data parallelism. Report values are
[sum, count] pairs for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from megatron_o1p.errors import ConfigError
from megatron_o1p.losses import dpo_loss, length_harmonizing_loss, sft_loss
from megatron_o1p.ops.logprobs import token_logprobs
from megatron_o1p.training.output_layout import crop_batch, loss_positions, set_logit_positions

LOSSES = ("o1-pruner", "sft", "dpo")


@dataclass(frozen=True)
class LossConfig:
    loss: str = "o1-pruner"
    """o1-pruner (eq. 11), sft (token-mean NLL) or dpo (sigmoid DPO)."""
    vocab_size: int = 0
    """True vocab size; logit columns at or beyond it are megatron's padding."""
    epsilon: float = 0.2
    epsilon_high: float | None = None
    ratio: str = "token"
    aggregation: str = "seq-mean"
    dpo_beta: float = 0.1
    logprob_impl: str = "chunked"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if self.vocab_size <= 0:
            raise ConfigError("LossConfig.vocab_size must be the model's true vocab size")


def compute_loss(cfg: LossConfig, batch: dict, logits: torch.Tensor, tp_group=None):
    """(loss sum, count, metrics) of one micro-batch from this rank's logit shard."""
    # The logits are private to this loss: let the backward overwrite them with their gradient.
    logprobs = token_logprobs(
        logits, batch["targets"], tp_group=tp_group, vocab_size=cfg.vocab_size,
        impl=cfg.logprob_impl, inplace_backward=True,
    )  # fmt: skip
    mask = batch["loss_mask"]
    if cfg.loss == "o1-pruner":
        loss, metrics = length_harmonizing_loss(
            logprobs, batch["ref_logprobs"], batch["advantages"], mask, epsilon=cfg.epsilon,
            epsilon_high=cfg.epsilon_high, ratio=cfg.ratio, aggregation=cfg.aggregation,
            normalizer=1.0,
        )  # fmt: skip
    elif cfg.loss == "sft":
        loss, metrics = sft_loss(logprobs, mask, normalizer=1.0)
    else:
        seq = (logprobs * mask.to(logprobs.dtype)).sum(-1)
        ref = batch["ref_seq_logprobs"]
        half = seq.shape[0] // 2
        loss, metrics = dpo_loss(seq[:half], seq[half:], ref[:half], ref[half:],
                                 beta=cfg.dpo_beta, normalizer=1.0)  # fmt: skip
    return loss, metrics.pop("count"), metrics


def _loss_func(cfg: LossConfig, tp_group, batch: dict, logits: torch.Tensor):
    loss, count, metrics = compute_loss(cfg, batch, logits, tp_group)
    report = {"loss": torch.stack([loss.detach().float(), count.float()])}
    for name, (total, units) in metrics.items():
        report[name] = torch.stack([total.float(), units.float()])
    return loss, count.to(torch.int), report


def make_forward_step(cfg: LossConfig, state):
    """The `forward_step_func(data_iterator, model)` for megatron's schedules."""
    tp_group = state.tp_group if state.tp_size > 1 else None

    def forward_step(data_iterator, model):
        batch = next(data_iterator)
        # Logits only where the loss reads them (training/output_layout.py).
        positions = loss_positions(batch["loss_mask"])
        if set_logit_positions(model, positions):
            loss_batch = crop_batch(batch, positions)
        else:
            loss_batch = batch
        output = model(batch["tokens"], batch["position_ids"], None)
        return output, partial(_loss_func, cfg, tp_group, loss_batch)

    return forward_step
