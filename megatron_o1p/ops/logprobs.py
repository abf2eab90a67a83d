"""log p(target) per token from this rank's vocab-parallel logits: one switch, three kernels.

    logprobs = token_logprobs(logits, targets, tp_group=tp_group, vocab_size=V, impl="chunked")

Shapes: `logits` [B, T, V_padded / TP] (batch-first, as megatron's `GPTModel` returns them when
no labels are given), `targets` [B, T] global token ids; returns fp32 [B, T] with autograd.
Columns at global index >= `vocab_size` (megatron's vocab padding) are excluded. Every
implementation gives the same numbers:

- `native`: megatron-core's `vocab_parallel_cross_entropy` on a masked fp32 copy. Uses
  megatron's global TP group.
- `chunked`: pure torch, a chunk of rows at a time; the fp32 copy of the full logits never
  exists (forward or backward). The default.
- `triton`: the project's fused Triton kernels (`logprobs_triton.py`); CUDA, or the Triton
  interpreter on the CPU.

`head_token_logprobs(hidden, weight, targets, ...)` is the fourth, `fused-head`: it takes the
output layer's input [B, T, h] and this rank's output weight [V_padded / TP, h] instead of the
logits, which then never exist (`logprobs_fused_head.py`); same numbers, same padding rule.

`inplace_backward=True` (chunked, triton) writes the gradient over the logits: use it when the
logits are consumed by this loss only (the training step), never when the caller reuses them.

Tested by tests/distributed/test_logprobs.py (against fp64 at TP 1/2/4).
"""

from __future__ import annotations

import torch

from megatron_o1p.errors import ConfigError
from megatron_o1p.ops.logprobs_chunked import chunked_token_entropy, chunked_token_logprobs
from megatron_o1p.ops.logprobs_fused_head import fused_head_token_logprobs
from megatron_o1p.ops.vocab_shard import VocabShard

IMPLEMENTATIONS = ("native", "chunked", "triton")
"""The implementations that take logits (`token_logprobs`)."""
HEAD_IMPLEMENTATION = "fused-head"
"""The one that takes hidden states and the output weight (`head_token_logprobs`)."""


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    tp_group=None,
    vocab_size: int | None = None,
    impl: str = "chunked",
    inplace_backward: bool = False,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """log p(targets) under softmax over the full (unpadded) vocabulary.

    Args:
        logits: [B, T, V_padded/TP], this rank's vocab shard, any float dtype. Not modified
            (unless `inplace_backward`, during backward).
        targets: [B, T] int64 global token ids; any value is allowed where the loss masks the
            position out (it gets some finite log-prob).
        tp_group: the tensor-parallel group the vocab is split over; None for TP=1.
        vocab_size: true vocab size; columns at or beyond it are padding. None = no padding.
        impl: "native", "chunked" or "triton".
        inplace_backward: chunked/triton only: write the gradient into the logits' storage.
        chunk_rows: chunked only: rows (tokens) per chunk; None = about 64M values per chunk.

    Returns:
        [B, T] fp32 log-probs, differentiable w.r.t. `logits`.
    """
    shard = VocabShard.of(logits, vocab_size, tp_group)
    if impl == "chunked":
        return chunked_token_logprobs(logits, targets, shard, chunk_rows, inplace_backward)
    if impl == "triton":
        from megatron_o1p.ops.logprobs_triton import triton_token_logprobs

        return triton_token_logprobs(logits, targets, shard, inplace_backward)
    if impl == "native":
        return _native_token_logprobs(logits, targets, shard)
    if impl == HEAD_IMPLEMENTATION:
        raise ConfigError(
            "--logprob-impl fused-head takes hidden states and the output weight, not logits: "
            "call head_token_logprobs (the output layer must be wrapped by "
            "training/output_layout.batch_first_output_layer(fused_head=True))"
        )
    raise ConfigError(
        f"unknown log-prob implementation {impl!r}; choose {', '.join(IMPLEMENTATIONS)}"
    )


def head_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    tp_group=None,
    vocab_size: int | None = None,
    chunk_cols: int | None = None,
) -> torch.Tensor:
    """log p(targets) under softmax(hidden @ weight.T) over the full (unpadded) vocabulary.

    Args:
        hidden: [B, T, h] the output layer's input, in the weight's dtype.
        weight: [V_padded/TP, h] this rank's shard of the output (or tied embedding) weight.
        targets: [B, T] int64 global token ids (any value where the loss masks it out).
        tp_group: the tensor-parallel group the vocab is split over; None for TP=1.
        vocab_size: true vocab size; rows of the weight at or beyond it are padding.
        chunk_cols: vocab columns per chunk; None = about 16M fp32 values, >= 8 chunks.

    Returns:
        [B, T] fp32 log-probs, differentiable w.r.t. `weight` and `hidden`. The gradient of
        `hidden` is this rank's share: sum it over TP (the output layer's input region does).
    """
    shard = VocabShard.of_width(weight.shape[0], vocab_size, tp_group)
    return fused_head_token_logprobs(hidden, weight, targets, shard, chunk_cols)


def _native_token_logprobs(logits, targets, shard: VocabShard) -> torch.Tensor:
    from megatron.core import tensor_parallel

    # NOTE: megatron's vocab-parallel CE subtracts the row max in place on fp32 input, so it
    # always gets a private fp32 copy, with padded columns at -inf so they take no mass.
    x = logits.float()
    if x.data_ptr() == logits.data_ptr():
        x = x.clone()
    if shard.valid < shard.width:
        x = x.masked_fill(_padding_mask(shard, x.device), float("-inf"))
    return -tensor_parallel.vocab_parallel_cross_entropy(x, targets)


def _padding_mask(shard: VocabShard, device) -> torch.Tensor:
    return torch.arange(shard.width, device=device) >= shard.valid


def token_entropy(logits, *, tp_group=None, vocab_size: int | None = None, chunk_rows=None):
    """Entropy [B, T] fp32 of each position's distribution over the unpadded vocab (no grad)."""
    return chunked_token_entropy(logits, VocabShard.of(logits, vocab_size, tp_group), chunk_rows)
