"""The one adapter between megatron's pipeline schedules and our pure losses.

Only this module calls megatron's `get_forward_backward_func()`:

- `make_forward_step(loss, state, vocab_size=V)` is the training `forward_step_func`, and
  `forward_backward(step, chunks, micro_batches)` runs megatron's schedule with it;
- `forward_only(chunks, state, micro_batches, output=...)` runs the same schedule without a
  backward and returns, per micro-batch, this rank's token log-probs or its raw logits
  (`o1p ref-logprobs`, `o1p convert verify`).

Each micro-batch is a dict of tensors (batch-first):

    tokens          [b, T] int64   input ids
    position_ids    [b, T] int64
    targets         [b, T] int64   the next token of each position (tokens shifted left)
    loss_mask       [b, T]         1 on response tokens that carry loss
    ref_logprobs    [b, T] fp32    o1-pruner: log pi_ref(target), precomputed
    advantages      [b]    fp32    o1-pruner: normalised R_LH
    ref_seq_logprobs [b]   fp32    dpo: sum of ref log-probs per sequence; rows [0, b/2) are
                                   the chosen responses, rows [b/2, b) the rejected ones

(`forward_only` reads `tokens` and `position_ids`, and `targets` for log-probs.) A packed
micro-batch (`training/packing.py`, `--pack-sequences`) is one row [1, T] of sequences end to
end, with `cu_seqlens` (the model gets megatron's `PackedSeqParams`) and `segment_index`, by
which the loss gathers its per-position values back to one row per sequence before any loss
or aggregation runs.

On the last pipeline stage the model returns this rank's vocab shard of the logits,
[b, T, V/TP] (megatron's `GPTModel` transposes to batch-first when no labels are given), or,
where the output layer is wrapped by `output_layout.batch_first_output_layer`, [b, T', V/TP]
for the span T' of positions that carry loss (the loss then reads the same span); the loss runs
there only. With `--logprob-impl fused-head` the wrapped layer returns the hidden states
[b, T', h] instead and the loss also gets the output weight the layer was given
(`output_layout.head_weight`): the log-probs come from both, with no logits tensor.

The loss function returns megatron's 3-tuple (loss sum, unit count, report): with
`calculate_per_token_loss=True` megatron sums the counts over micro-batches and data-parallel
ranks and divides the gradients by that global count, so seq-mean and token-mean stay exact
under gradient accumulation and data parallelism. Report values are
[sum, count] pairs for the same reason. Forward-only runs use megatron's
`collect_non_loss_data` path: the schedule stores what the function returns, no loss at all.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from megatron_o1p.config.loss import LossConfig
from megatron_o1p.losses import dpo_loss, length_harmonizing_loss, sft_loss
from megatron_o1p.ops.logprobs import HEAD_IMPLEMENTATION, head_token_logprobs, token_logprobs
from megatron_o1p.training.moe_aux import weigh_aux_loss
from megatron_o1p.training.output_layout import (
    crop_batch,
    head_weight,
    loss_positions,
    set_logit_positions,
)
from megatron_o1p.training.packing import PACKED_KEY, packed_seq_params, unpack_segments

FORWARD_OUTPUTS = ("logprobs", "logits")
"""What `forward_only` returns per micro-batch: token log-probs, or the raw logit shard."""


def _tp_group(state):
    return state.tp_group if state.tp_size > 1 else None


def output_logprobs(
    impl: str, output, targets, *, vocab_size: int, tp_group=None, weight=None, inplace=False
) -> torch.Tensor:
    """[b, T] fp32 log p(targets) from what the last stage's model returned.

    Args:
        impl: `--logprob-impl`.
        output: [b, T, V/TP] this rank's logit shard, or for "fused-head" the hidden states
            [b, T, h].
        targets: [b, T] int64 global token ids.
        vocab_size: the true vocab size; columns at or beyond it are megatron's padding.
        tp_group: the tensor-parallel group the vocab is split over; None at TP 1.
        weight: "fused-head" only: this rank's output weight [V_padded/TP, h].
        inplace: logits impls: the backward overwrites the logits with their gradient.
    """
    if impl == HEAD_IMPLEMENTATION:
        return head_token_logprobs(
            output, weight, targets, tp_group=tp_group, vocab_size=vocab_size
        )
    return token_logprobs(
        output,
        targets,
        tp_group=tp_group,
        vocab_size=vocab_size,
        impl=impl,
        inplace_backward=inplace,
    )


def compute_loss(
    cfg: LossConfig,
    batch: dict,
    output: torch.Tensor,
    *,
    vocab_size: int,
    tp_group=None,
    weight: torch.Tensor | None = None,
):
    """(loss sum, count, metrics) of one micro-batch from this rank's logit shard.

    Args:
        cfg: which loss and its hyper-parameters.
        batch: the micro-batch (see the module docstring), cut to the output's positions.
        output: [b, T, V/TP] this rank's vocab shard, private to the loss (the backward
            overwrites it with its gradient); for `fused-head` the hidden states [b, T, h].
        vocab_size: the true vocab size; logit columns at or beyond it are megatron's padding.
        tp_group: the tensor-parallel group the vocab is split over; None at TP 1.
        weight: `fused-head` only: this rank's output weight [V_padded/TP, h].
    """
    logprobs = output_logprobs(
        cfg.logprob_impl,
        output,
        batch["targets"],
        vocab_size=vocab_size,
        tp_group=tp_group,
        weight=weight,
        inplace=True,
    )
    mask, ref_logprobs = batch["loss_mask"], batch["ref_logprobs"]
    if PACKED_KEY in batch:  # one packed row -> one row per sequence (training/packing.py)
        index = batch[PACKED_KEY]
        logprobs, mask, ref_logprobs = (
            unpack_segments(x, index) for x in (logprobs, mask, ref_logprobs)
        )
    if cfg.loss == "o1-pruner":
        loss, metrics = length_harmonizing_loss(
            logprobs,
            ref_logprobs,
            batch["advantages"],
            mask,
            epsilon=cfg.epsilon,
            epsilon_high=cfg.epsilon_high,
            ratio=cfg.ratio,
            aggregation=cfg.loss_aggregation,
            normalizer=1.0,
        )
    elif cfg.loss == "sft":
        loss, metrics = sft_loss(logprobs, mask, normalizer=1.0)
    else:
        seq = (logprobs * mask.to(logprobs.dtype)).sum(-1)
        ref = batch["ref_seq_logprobs"]
        half = seq.shape[0] // 2
        loss, metrics = dpo_loss(
            seq[:half], seq[half:], ref[:half], ref[half:], beta=cfg.dpo_beta, normalizer=1.0
        )
    return loss, metrics.pop("count"), metrics


def _loss_func(cfg: LossConfig, vocab_size: int, tp_group, batch: dict, weight, output):
    loss, count, metrics = compute_loss(
        cfg, batch, output, vocab_size=vocab_size, tp_group=tp_group, weight=weight
    )
    report = {"loss": torch.stack([loss.detach().float(), count.float()])}
    for name, (total, units) in metrics.items():
        report[name] = torch.stack([total.float(), units.float()])
    return loss, count.to(torch.int), report


def make_forward_step(
    loss: LossConfig, state, *, vocab_size: int, moe_aux_loss_coef: float | None = None
) -> Callable:
    """The training `forward_step_func(data_iterator, model)` for megatron's schedules.

    Args:
        loss: which loss and its hyper-parameters.
        state: this process's `distributed.initialize.ParallelState`.
        vocab_size: the model's true vocab size (logit columns past it are padding).
        moe_aux_loss_coef: a mixture of experts' load-balancing coefficient, weighed per
            micro-batch (training/moe_aux.py); None for a dense model.
    """
    tp_group = _tp_group(state)
    fused_head = loss.logprob_impl == HEAD_IMPLEMENTATION

    def forward_step(data_iterator, model):
        batch = next(data_iterator)
        # Logits only where the loss reads them (training/output_layout.py).
        positions = loss_positions(batch["loss_mask"])
        if set_logit_positions(model, positions):
            loss_batch = crop_batch(batch, positions)
        else:
            loss_batch = batch
        if moe_aux_loss_coef is not None:
            weigh_aux_loss(model, loss, moe_aux_loss_coef, batch)
        output = model(
            batch["tokens"],
            batch["position_ids"],
            None,
            packed_seq_params=packed_seq_params(batch),
        )
        weight = head_weight(model) if fused_head else None
        return output, partial(_loss_func, loss, vocab_size, tp_group, loss_batch, weight)

    return forward_step


def forward_backward(
    forward_step: Callable, chunks: list, micro_batches: list[dict], *, forward_only: bool = False
) -> list:
    """Megatron's schedule over `micro_batches`; returns what it collected on the last stage.

    Args:
        forward_step: a `forward_step_func` (`make_forward_step`, or forward-only's).
        chunks: this rank's model chunk(s) (DDP-wrapped for training); several = interleaved.
        micro_batches: the step's micro-batches on this rank, all of one [b, T] shape.
        forward_only: no backward (and then the function's output is collected as is).
    """
    from megatron.core.pipeline_parallel import get_forward_backward_func

    interleaved = len(chunks) > 1
    tokens = micro_batches[0]["tokens"]
    return get_forward_backward_func()(
        forward_step_func=forward_step,
        data_iterator=[iter(micro_batches) for _ in chunks] if interleaved else iter(micro_batches),
        model=chunks if interleaved else chunks[0],
        num_microbatches=len(micro_batches),
        seq_length=tokens.shape[1],
        micro_batch_size=tokens.shape[0],
        forward_only=forward_only,
        collect_non_loss_data=forward_only,
    )


def forward_only(
    chunks: list,
    state,
    micro_batches: list[dict],
    *,
    output: str,
    vocab_size: int | None = None,
    logprob_impl: str = "chunked",
) -> list[torch.Tensor] | None:
    """Run the model forward-only (megatron's schedule, no grad) over `micro_batches`.

    Args:
        chunks: this rank's model chunk(s), in eval mode.
        state: this process's `ParallelState`.
        micro_batches: dicts with `tokens` and `position_ids` [b, T] (and `targets` [b, T]
            for log-probs), all of one shape.
        output: "logprobs": [b, T] fp32 log p(target) over the true vocab (the training
            loss's `token_logprobs`, summed over TP); "logits": this rank's vocab shard
            [b, T, V/TP] as the model returns it (padded columns included; needs an output
            layer that is not in fused-head mode).
        vocab_size: the true vocab size; required for "logprobs".
        logprob_impl: the kernel (`--logprob-impl`); "fused-head" needs the output layer
            wrapped with `batch_first_output_layer(chunks, fused_head=True)`.

    Returns:
        One tensor per micro-batch on the last pipeline stage; None on the other stages.
    """
    if output not in FORWARD_OUTPUTS:
        raise ValueError(f"output={output!r}: choose one of {FORWARD_OUTPUTS}")
    if output == "logprobs" and vocab_size is None:
        raise ValueError("forward_only(output='logprobs') needs the model's vocab_size")
    tp_group = _tp_group(state)
    fused_head = output == "logprobs" and logprob_impl == HEAD_IMPLEMENTATION

    def forward_step(data_iterator, model):
        batch = next(data_iterator)
        out = model(
            batch["tokens"],
            batch["position_ids"],
            None,
            packed_seq_params=packed_seq_params(batch),
        )
        weight = head_weight(model) if fused_head else None

        def collect(out: torch.Tensor, non_loss_data: bool = True) -> torch.Tensor:
            if output == "logits":
                return out.detach()
            return output_logprobs(
                logprob_impl,
                out,
                batch["targets"],
                vocab_size=vocab_size,
                tp_group=tp_group,
                weight=weight,
            )

        return out, collect

    with torch.no_grad():
        outputs = forward_backward(forward_step, chunks, micro_batches, forward_only=True)
    return list(outputs) if state.is_last_stage else None
