"""Core attention of the local spec that keeps packed sequences apart.

megatron's `DotProductAttention` (the local spec's core attention) refuses `packed_seq_params`:
only TE's attention reads the THD layout. `SegmentCausalAttention` is the same module with that
one addition: given megatron's `PackedSeqParams`, it runs the parent's causal attention on each
segment of the packed row separately (cu_seqlens), so no token attends across a sequence
boundary, and returns the segments end to end. The arithmetic per segment is the parent's, on
the same positions a padded row would give that sequence; the cost is each segment's own
square, not the row's (a block-diagonal mask over the row would cost T^2).

RoPE needs nothing here: megatron's attention already rotates each segment from position 0
when it is given cu_seqlens (`apply_rotary_pos_emb`), before calling the core attention.
Without packed_seq_params the module is exactly the parent.

Tested by tests/distributed/test_packing.py (packed == padded loss and gradients).
"""

from __future__ import annotations

import torch
from megatron.core.transformer.dot_product_attention import DotProductAttention


class SegmentCausalAttention(DotProductAttention):
    """`DotProductAttention` that also accepts packed rows (see the module docstring)."""

    def forward(
        self,
        query,
        key,
        value,
        attention_mask,
        attn_mask_type=None,
        attention_bias=None,
        packed_seq_params=None,
    ):
        if packed_seq_params is None:
            return super().forward(
                query, key, value, attention_mask, attn_mask_type, attention_bias
            )
        # THD: megatron has squeezed the dummy batch dimension, [t, heads, head_dim].
        cu_seqlens = packed_seq_params.cu_seqlens_q
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        segments = [
            # [L, 1, heads, head_dim] each -> [L, 1, heads * head_dim]; None: causal
            super(SegmentCausalAttention, self).forward(
                q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), None, attn_mask_type, attention_bias
            )
            for q, k, v in zip(query.split(lengths), key.split(lengths), value.split(lengths))
        ]
        return torch.cat(segments).squeeze(1)
