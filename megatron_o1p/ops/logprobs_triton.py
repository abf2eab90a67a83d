"""Token log-probs from vocab-parallel logits with the project's own fused Triton kernels.

Forward: one program per row streams the shard's columns once, keeping an online max and
sum-exp (and picking up the target's logit), and writes 3 fp32 numbers per row; across TP the
[R, 3] stats are all-gathered once (`vocab_shard.combine_row_stats`). Backward: one program per
row streams the columns again and writes g * (onehot(target) - exp(x - lse)) straight into the
gradient, which with `inplace_backward` is the logits' own storage (no second full-size buffer).
Reads of the logits: two (forward, backward); writes: one (the gradient).

Runs on CUDA. On the CPU the same kernels run through Triton's interpreter
(`TRITON_INTERPRET=1` set before this module is imported; triton >= 3.8), which the tests use.

Tested by benchmarks/gpu/logprob_triton.py on a GPU (tests/distributed/test_logprobs.py checks the
CPU fallback).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from megatron_o1p.ops.vocab_shard import VocabShard, combine_row_stats


@triton.jit
def _row_stats_kernel(
    logits_ptr,
    row_stride,
    local_target_ptr,
    owned_ptr,
    stats_ptr,
    valid_cols,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * row_stride
    target_col = tl.load(local_target_ptr + row)
    owned = tl.load(owned_ptr + row)
    running_max = float("-inf")
    running_sum = 0.0
    target_logit = 0.0
    for start in range(0, valid_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        in_range = cols < valid_cols
        x = tl.load(base + cols, mask=in_range, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, 0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(
            tl.where(in_range, tl.exp(x - new_max), 0.0), 0
        )
        running_max = new_max
        target_logit += tl.sum(tl.where((cols == target_col) & in_range, x, 0.0), 0)
    target_logit = tl.where(owned != 0, target_logit, 0.0)
    tl.store(stats_ptr + row * 3, running_max)
    tl.store(stats_ptr + row * 3 + 1, running_sum)
    tl.store(stats_ptr + row * 3 + 2, target_logit)


@triton.jit
def _row_grad_kernel(
    logits_ptr,
    row_stride,
    grad_ptr,
    grad_stride,
    grad_out_ptr,
    lse_ptr,
    local_target_ptr,
    owned_ptr,
    n_cols,
    valid_cols,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * row_stride
    out = grad_ptr + row * grad_stride
    g = tl.load(grad_out_ptr + row).to(tl.float32)
    lse = tl.load(lse_ptr + row)
    target_col = tl.load(local_target_ptr + row)
    owned = tl.load(owned_ptr + row)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        in_row = cols < n_cols
        valid = cols < valid_cols
        x = tl.load(base + cols, mask=valid, other=float("-inf")).to(tl.float32)
        grad = -g * tl.where(valid, tl.exp(x - lse), 0.0)
        grad += tl.where((cols == target_col) & (owned != 0), g, 0.0)
        tl.store(out + cols, grad.to(out.dtype.element_ty), mask=in_row)


def _block(width: int) -> int:
    return min(4096, triton.next_power_of_2(max(width, 16)))


class _TritonTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, shard, inplace_backward):
        rows = logits.reshape(-1, shard.width)
        if rows.stride(-1) != 1:
            rows = rows.contiguous()
        local_target, owned = shard.local_targets(targets.reshape(-1))
        owned = owned.to(torch.int8)
        stats = torch.empty((rows.shape[0], 3), dtype=torch.float32, device=rows.device)
        _row_stats_kernel[(rows.shape[0],)](
            rows, rows.stride(0), local_target, owned, stats, shard.valid, BLOCK=_block(shard.width)
        )
        lse, target_logit = combine_row_stats(stats, shard)
        ctx.save_for_backward(rows, lse, local_target, owned)
        ctx.shard, ctx.inplace_backward, ctx.logits_shape = shard, inplace_backward, logits.shape
        return (target_logit - lse).reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad_output):
        rows, lse, local_target, owned = ctx.saved_tensors
        shard = ctx.shard
        grad = rows if ctx.inplace_backward else torch.empty_like(rows)
        grad_rows = grad_output.reshape(-1).contiguous().float()
        _row_grad_kernel[(rows.shape[0],)](
            rows,
            rows.stride(0),
            grad,
            grad.stride(0),
            grad_rows,
            lse,
            local_target,
            owned,
            shard.width,
            shard.valid,
            BLOCK=_block(shard.width),
        )
        return grad.reshape(ctx.logits_shape), None, None, None


def triton_token_logprobs(logits, targets, shard: VocabShard, inplace_backward: bool = False):
    """log p(target) [B, T] fp32; see `ops.logprobs.token_logprobs` for the contract."""
    return _TritonTokenLogprobs.apply(logits, targets, shard, inplace_backward)
