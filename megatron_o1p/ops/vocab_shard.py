"""Shared pieces of the vocab-parallel log-prob implementations.

Shapes (batch-first, as `GPTModel` returns logits when no labels are given):
    logits   [B, T, V/TP]  this rank's vocab shard, any float dtype
    targets  [B, T]        global token ids (int64)
    rows     R = B * T     one softmax per row

Megatron pads the vocab to `padded_vocab_size`; columns at global index >= `vocab_size` are not
tokens and are excluded (treated as -inf) everywhere.

Tested by tests/distributed/test_logprobs.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class VocabShard:
    """Where this rank's logit columns sit in the (padded) vocabulary."""

    start: int
    """Global id of this rank's first column."""
    width: int
    """Columns on this rank (padded vocab / TP)."""
    valid: int
    """Columns that are real tokens (the rest are padding)."""
    tp_group: object | None
    tp_size: int

    @classmethod
    def of(cls, logits: torch.Tensor, vocab_size: int | None, tp_group=None) -> "VocabShard":
        """The shard of a [..., V_pad/TP] logits tensor."""
        return cls.of_width(logits.shape[-1], vocab_size, tp_group)

    @classmethod
    def of_width(cls, width: int, vocab_size: int | None, tp_group=None) -> "VocabShard":
        """The shard of `width` columns per rank (an output weight's rows)."""
        tp_size = dist.get_world_size(tp_group) if tp_group is not None else 1
        rank = dist.get_rank(tp_group) if tp_group is not None else 0
        start = rank * width
        total = vocab_size if vocab_size is not None else width * tp_size
        valid = max(0, min(width, total - start))
        return cls(start, width, valid, tp_group if tp_size > 1 else None, tp_size)

    def local_targets(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(column of each target in this shard, clamped to 0; whether this shard owns it)."""
        local = targets - self.start
        owned = (local >= 0) & (local < self.valid)
        return torch.where(owned, local, torch.zeros_like(local)), owned


def combine_row_stats(stats: torch.Tensor, shard: VocabShard) -> tuple[torch.Tensor, torch.Tensor]:
    """Global (log-sum-exp, target logit) per row from per-shard (max, sum-exp, target logit).

    Args:
        stats: [R, 3] fp32: this shard's row max, sum of exp(x - max), and the target's logit
            (0 where another shard owns the target).
        shard: this rank's shard; with TP > 1 one all-gather of the [R, 3] stats crosses ranks.

    Returns:
        (lse [R], target_logit [R]), fp32, identical on every TP rank.
    """
    if shard.tp_group is not None:
        gathered = [torch.empty_like(stats) for _ in range(shard.tp_size)]
        dist.all_gather(gathered, stats.contiguous(), group=shard.tp_group)
        stats = torch.stack(gathered)  # [TP, R, 3]
    else:
        stats = stats.unsqueeze(0)
    row_max, sum_exp, target = stats.unbind(-1)
    global_max = row_max.max(0).values
    # A shard made only of padding has max -inf and sum 0: its term must vanish, not be NaN.
    scale = torch.where(sum_exp > 0, torch.exp(row_max - global_max), torch.zeros_like(sum_exp))
    lse = global_max + torch.log((sum_exp * scale).sum(0))
    return lse, target.sum(0)
