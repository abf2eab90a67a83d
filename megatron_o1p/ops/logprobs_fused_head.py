"""Token log-probs from the hidden states and the output weight: the logits never exist.

    logprobs = fused_head_token_logprobs(hidden, weight, targets, shard)
    # the same numbers as token_logprobs(hidden @ weight.T, targets, ...)

Shapes (one vocab shard per TP rank, as megatron's `ColumnParallelLinear` output layer holds it):
    hidden   [B, T, h]      the output layer's input at the positions that carry loss
    weight   [V_pad/TP, h]  this rank's rows of the output (or tied embedding) weight
    targets  [B, T]         global token ids
    rows     R = B * T      one softmax per row; a "chunk" is a block of C vocab columns

Forward: for each chunk of this shard's real (non-padding) columns, the [R, C] logits are
computed in the weight's dtype (the numbers the output layer would produce), upcast to fp32 and
folded into an online (max, sum-exp) per row (`fold_row_stats`); the target's logit is picked up
in the chunk that owns it. Across TP one collective of the [R, 3] stats gives the global
log-sum-exp (`vocab_shard.combine_row_stats`). Padded columns are never computed at all.

Backward: each chunk's logits are recomputed, turned into g * (onehot(target) - softmax) in
fp32, cast to the model dtype (as the logits' gradient is on the logits path) and used twice:
the chunk's weight-gradient rows are written once, complete (d^T @ hidden: no [V, h] fp32
accumulator and no rounding across chunks), and d @ weight_chunk is added into an fp32 [R, h]
accumulator for the hidden states. Chunking over columns (not rows) is what makes the weight
gradient exact and the extra memory small: [R, C] fp32 + [R, h] fp32.

Cost against the output layer + chunked log-probs: the same three GEMMs plus one (the forward
chunk is recomputed in backward), and none of the [R, V/TP] logits or their gradient in memory.

The gradient w.r.t. `hidden` is this shard's contribution only, exactly as for `hidden @
weight.T` on one rank: the caller sums it over TP (megatron's `copy_to_tensor_model_parallel_
region`, which `training/output_layout.py` applies, as the output layer itself does).
"""

from __future__ import annotations

import torch

from megatron_o1p.ops.vocab_shard import VocabShard, combine_row_stats

# fp32 values per [rows, columns] chunk: 16M (64 MiB). Half of `logprobs_chunked`'s, since a
# backward chunk also holds its model-dtype copy and its GEMM input (measured with
# benchmarks/logprob_memory.py); at 16k tokens still 1024 columns, a GEMM-sized chunk.
_CHUNK_VALUES = 1 << 24
# Fewest columns per chunk, so a very long micro-batch still gets GEMM-sized chunks.
_MIN_CHUNK_COLS = 128
# Fewest chunks per shard, so that for short inputs too a chunk's buffers (fp32 + two
# model-dtype copies) stay below the model-dtype logits this replaces.
_MIN_CHUNKS = 8


def default_chunk_cols(rows: int, width: int) -> int:
    """Columns per chunk: about 16M fp32 values, and at least `_MIN_CHUNKS` chunks of `width`."""
    cols = min(_CHUNK_VALUES // max(rows, 1), -(-width // _MIN_CHUNKS))
    return max(_MIN_CHUNK_COLS, cols)


def empty_row_stats(rows: int, device, dtype=torch.float32) -> torch.Tensor:
    """[rows, 2] (max, sum-exp) of no columns at all: (-inf, 0)."""
    stats = torch.zeros(rows, 2, dtype=dtype, device=device)
    stats[:, 0] = float("-inf")
    return stats


def fold_row_stats(stats: torch.Tensor, chunk: torch.Tensor) -> torch.Tensor:
    """Online log-sum-exp: fold one chunk of columns into running per-row (max, sum-exp).

    Args:
        stats: [R, 2] fp32 running (max m, sum of exp(x - m)) over the columns seen so far;
            (-inf, 0) for none (`empty_row_stats`).
        chunk: [R, C] fp32 logits of the next columns (-inf allowed: a column with no mass).

    Returns:
        [R, 2] fp32 (max, sum-exp) over the columns seen so far and `chunk`;
        log-sum-exp = max + log(sum-exp).
    """
    old_max, old_sum = stats.unbind(-1)
    new_max = torch.maximum(old_max, chunk.max(-1).values)
    # Rows with no finite value yet keep max -inf and sum 0: shift by 0 there, not by -inf.
    shift = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
    new_sum = old_sum * torch.exp(old_max - shift) + torch.exp(chunk - shift[:, None]).sum(-1)
    return torch.stack([new_max, new_sum], -1)


def _chunks(shard: VocabShard, chunk_cols: int):
    """(first, last) column of each chunk of this shard's real columns."""
    for start in range(0, shard.valid, chunk_cols):
        yield start, min(start + chunk_cols, shard.valid)


def _math_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp32/bf16/fp16 models; fp64 stays fp64 (gradcheck)."""
    return torch.promote_types(dtype, torch.float32)


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor, start: int, end: int):
    """[R, C] fp32 logits of columns [start, end): the GEMM in the model dtype, as the output
    layer computes them, then upcast."""
    return (hidden @ weight[start:end].t()).to(_math_dtype(hidden.dtype))


def _target_in_chunk(local_target, owned, start: int, end: int):
    """(column of each row's target within the chunk, clamped; whether the chunk holds it)."""
    inside = owned & (local_target >= start) & (local_target < end)
    return (local_target - start).clamp(0, end - start - 1), inside


def _forward_stats(hidden, weight, local_target, owned, shard: VocabShard, chunk_cols: int):
    """[R, 3] fp32 (max, sum-exp, target logit or 0) of this shard's real columns."""
    dtype = _math_dtype(hidden.dtype)
    stats = empty_row_stats(hidden.shape[0], hidden.device, dtype)
    target_logit = torch.zeros(hidden.shape[0], dtype=dtype, device=hidden.device)
    for start, end in _chunks(shard, chunk_cols):
        logits = _chunk_logits(hidden, weight, start, end)
        stats = fold_row_stats(stats, logits)
        column, inside = _target_in_chunk(local_target, owned, start, end)
        picked = logits.gather(-1, column[:, None]).squeeze(-1)
        target_logit += torch.where(inside, picked, torch.zeros_like(picked))
    return torch.cat([stats, target_logit[:, None]], -1)


class _HeadTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, shard, chunk_cols):
        rows = hidden.reshape(-1, hidden.shape[-1])
        local_target, owned = shard.local_targets(targets.reshape(-1))
        stats = _forward_stats(rows, weight, local_target, owned, shard, chunk_cols)
        lse, target_logit = combine_row_stats(stats, shard)
        ctx.save_for_backward(rows, weight, lse, local_target, owned)
        ctx.shard, ctx.chunk_cols, ctx.hidden_shape = shard, chunk_cols, hidden.shape
        return (target_logit - lse).reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad_output):
        rows, weight, lse, local_target, owned = ctx.saved_tensors
        want_hidden, want_weight = ctx.needs_input_grad[:2]
        g = grad_output.reshape(-1).to(_math_dtype(rows.dtype))
        grad_rows = None
        if want_hidden:
            grad_rows = torch.zeros(rows.shape, dtype=g.dtype, device=rows.device)
        grad_weight = torch.zeros_like(weight) if want_weight else None  # padding rows stay 0
        for start, end in _chunks(ctx.shard, ctx.chunk_cols):
            # d logp / d logits = onehot(target) - softmax, times the incoming gradient g.
            d = _chunk_logits(rows, weight, start, end).sub_(lse[:, None]).exp_()
            d.mul_(-g[:, None])
            column, inside = _target_in_chunk(local_target, owned, start, end)
            owned_g = torch.where(inside, g, torch.zeros_like(g))
            d.scatter_add_(-1, column[:, None], owned_g[:, None])
            d = d.to(weight.dtype)
            if want_weight:
                torch.mm(d.t(), rows, out=grad_weight[start:end])
            if want_hidden:
                grad_rows += d @ weight[start:end]
        grad_hidden = None
        if want_hidden:
            grad_hidden = grad_rows.to(rows.dtype).reshape(ctx.hidden_shape)
        return grad_hidden, grad_weight, None, None, None


def fused_head_token_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    shard: VocabShard,
    chunk_cols: int | None = None,
) -> torch.Tensor:
    """log p(target) [B, T] fp32 under softmax(hidden @ weight.T) over the unpadded vocab.

    Args:
        hidden: [B, T, h] the output layer's input, in the weight's dtype.
        weight: [V_pad/TP, h] this rank's shard of the output weight (rows = vocab columns).
        targets: [B, T] int64 global token ids.
        shard: where this rank's rows sit in the padded vocab (`VocabShard.of_width`).
        chunk_cols: vocab columns per chunk; None = `default_chunk_cols`.

    Returns:
        [B, T] fp32 log-probs, differentiable w.r.t. `hidden` (this shard's part; summed over
        TP by the caller) and `weight`.
    """
    if hidden.dtype != weight.dtype:
        raise TypeError(f"hidden is {hidden.dtype} but the weight is {weight.dtype}")
    rows = hidden.numel() // max(hidden.shape[-1], 1)
    chunk_cols = chunk_cols or default_chunk_cols(rows, shard.width)
    return _HeadTokenLogprobs.apply(hidden, weight, targets, shard, chunk_cols)
