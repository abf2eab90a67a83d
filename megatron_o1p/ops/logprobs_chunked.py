"""Token log-probs from vocab-parallel logits, a chunk of rows at a time (pure torch).

The fp32 copy of the logits only ever exists for one chunk of rows (forward and backward);
autograd saves the input logits (which exist anyway) and one fp32 log-sum-exp per row. The
backward recomputes each chunk's softmax from them and writes d logp / d logits, either into a
new buffer of the logits' dtype or, with `inplace_backward`, over the logits themselves.

Tested by tests/distributed/test_logprobs.py (against fp64 at TP 1/2/4).
"""

from __future__ import annotations

import torch

from megatron_o1p.ops.vocab_shard import VocabShard, combine_row_stats

# Rows per chunk so that one fp32 chunk holds about 32M values (128 MiB).
_CHUNK_VALUES = 1 << 25


def default_chunk_rows(width: int) -> int:
    return max(1, _CHUNK_VALUES // max(width, 1))


def _private_fp32(chunk: torch.Tensor, shard: VocabShard) -> torch.Tensor:
    """An fp32 copy of a chunk that the caller does not share (so in-place ops are safe), with
    padded columns at -inf."""
    x = chunk.float()
    if x.data_ptr() == chunk.data_ptr():
        x = x.clone()
    if shard.valid < shard.width:
        x[:, shard.valid :] = float("-inf")
    return x


def chunk_stats(
    chunk: torch.Tensor, local_target: torch.Tensor, owned: torch.Tensor, shard: VocabShard
) -> torch.Tensor:
    """[rows, 3] fp32 (max, sum exp(x - max), target logit or 0) of one chunk of this shard."""
    x = _private_fp32(chunk, shard)
    row_max = x.max(-1).values
    target = x.gather(-1, local_target[:, None]).squeeze(-1)
    target = torch.where(owned, target, torch.zeros_like(target))
    # An all-padding shard has max -inf: subtract 0 instead so its sum is exp(-inf) = 0.
    finite_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    sum_exp = x.sub_(finite_max[:, None]).exp_().sum(-1)
    return torch.stack([row_max, sum_exp, target], -1)


class _ChunkedTokenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, shard, chunk_rows, inplace_backward):
        rows = logits.reshape(-1, shard.width)
        local_target, owned = shard.local_targets(targets.reshape(-1))
        stats = torch.cat(
            [
                chunk_stats(
                    rows[i : i + chunk_rows],
                    local_target[i : i + chunk_rows],
                    owned[i : i + chunk_rows],
                    shard,
                )
                for i in range(0, rows.shape[0], chunk_rows)
            ]
        )
        lse, target_logit = combine_row_stats(stats, shard)
        ctx.save_for_backward(logits, lse, local_target, owned)
        ctx.shard, ctx.chunk_rows, ctx.inplace_backward = shard, chunk_rows, inplace_backward
        return (target_logit - lse).reshape(targets.shape)

    @staticmethod
    def backward(ctx, grad_output):
        logits, lse, local_target, owned = ctx.saved_tensors
        shard, chunk_rows = ctx.shard, ctx.chunk_rows
        rows = logits.reshape(-1, shard.width)
        grad = rows if ctx.inplace_backward else torch.empty_like(rows)
        grad_rows = grad_output.reshape(-1).float()
        for i in range(0, rows.shape[0], chunk_rows):
            part = slice(i, i + chunk_rows)
            # d logp / dx = onehot(target) - softmax(x); padded columns have softmax 0.
            chunk_grad = _private_fp32(rows[part], shard)
            chunk_grad.sub_(lse[part, None]).exp_().mul_(-grad_rows[part, None])
            index = local_target[part, None]
            owned_grad = torch.where(owned[part], grad_rows[part], torch.zeros_like(lse[part]))
            chunk_grad.scatter_add_(-1, index, owned_grad[:, None])
            grad[part] = chunk_grad.to(grad.dtype)
        return grad.reshape(logits.shape), None, None, None, None


def chunked_token_logprobs(
    logits,
    targets,
    shard: VocabShard,
    chunk_rows: int | None = None,
    inplace_backward: bool = False,
) -> torch.Tensor:
    """log p(target) [B, T] fp32; see `ops.logprobs.token_logprobs` for the contract."""
    chunk_rows = chunk_rows or default_chunk_rows(shard.width)
    return _ChunkedTokenLogprobs.apply(logits, targets, shard, chunk_rows, inplace_backward)


@torch.no_grad()
def chunked_token_entropy(logits, shard: VocabShard, chunk_rows: int | None = None):
    """Entropy of each row's (full-vocab) distribution [B, T] fp32, for logging."""
    import torch.distributed as dist

    chunk_rows = chunk_rows or default_chunk_rows(shard.width)
    rows = logits.reshape(-1, shard.width)
    out = []
    for i in range(0, rows.shape[0], chunk_rows):
        x = _private_fp32(rows[i : i + chunk_rows], shard)
        row_max = x.max(-1).values
        if shard.tp_group is not None:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX, group=shard.tp_group)
        p = torch.exp(x - row_max[:, None])
        sums = torch.stack([p.sum(-1), (p * torch.nan_to_num(x, neginf=0.0)).sum(-1)], -1)
        if shard.tp_group is not None:
            dist.all_reduce(sums, group=shard.tp_group)
        # H = log Z - E[x], with Z = sum exp(x - max) and the max added back.
        out.append(torch.log(sums[:, 0]) + row_max - sums[:, 1] / sums[:, 0])
    return torch.cat(out).reshape(logits.shape[:-1])
