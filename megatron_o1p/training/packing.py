"""Packed micro-batches: whole sequences laid end to end in one row, none cut across rows.

Padding each micro-batch to its longest row wastes the gap to every shorter row; reasoning
traces have a long tail (R1-distill responses of 1k-16k tokens), so most of a padded batch
would be padding. `--pack-sequences` instead fills micro-batches of at most
`micro_batch_size x seq_length` positions (the most a padded micro-batch of the same flags
holds; with --micro-batch-size 1 that is Megatron-LM's "one packed sequence of --seq-length")
by first-fit decreasing over the step's rows, and collates each as one row:

    tokens/targets/loss_mask/ref_logprobs [1, T]  the sequences end to end, then padding
    position_ids  [1, T]   restart at 0 in every sequence
    cu_seqlens    [n + 1]  int32 offsets of the n sequences (the padding is one more segment,
                           so the segments cover all T positions, as megatron's THD layout wants)
    max_seqlen    int      the longest segment
    segment_index [s, L]   for each of the s sequences (DPO: chosen ones first, then rejected)
                           and each of its L positions, its position in the row; T (one past
                           the row) where the sequence is shorter than L
    advantages, ref_seq_logprobs [s]

The model runs the row with megatron's `PackedSeqParams` (qkv_format "thd"): RoPE restarts in
every segment (megatron's `apply_rotary_pos_emb` with cu_seqlens) and attention stays inside
its segment (TE's THD kernels; `models/segment_attention.py` for the local spec). The loss
then gathers the row's per-position values back to one row per sequence (`unpack_segments`),
so every loss and its per-sequence aggregation are unchanged: packed and padded steps give the
same loss and gradients (tests/distributed/test_packing.py).

A DPO row (chosen, rejected) is one item: the pair always lands in the same micro-batch.

Tested by tests/unit/training/test_packing.py and tests/distributed/test_packing.py.
"""

from __future__ import annotations

import torch

PACKED_KEY = "segment_index"
"""The key that marks a packed micro-batch."""


def first_fit_decreasing(sizes: list[int], capacity: int) -> list[list[int]]:
    """Indices of `sizes` grouped into bins of total at most `capacity`.

    Largest first (ties by index), each into the first bin it fits, a new bin otherwise; a size
    over the capacity gets a bin of its own. Deterministic: the same sizes give the same bins.
    """
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, free in enumerate(room):
            if sizes[i] <= free:
                bins[b].append(i)
                room[b] -= sizes[i]
                break
        else:
            bins.append([i])
            room.append(capacity - sizes[i])
    return bins


def collate_packed(sequences: list, pad_to: int, pad_id: int = 0) -> dict:
    """One packed micro-batch row of `pad_to` positions (see the module docstring).

    Args:
        sequences: `training.data.Sequence`s in the order the loss reads them (DPO: the bin's
            chosen sequences, then their rejected ones, pair i at i and s/2 + i).
        pad_to: positions of the row, at least the sequences' total (tokens - 1 each).
    """
    lengths = [len(s.tokens) - 1 for s in sequences]
    used = sum(lengths)
    if used > pad_to:
        raise ValueError(f"{used} positions do not fit a packed row of {pad_to}")
    tokens = torch.full((1, pad_to), pad_id, dtype=torch.long)
    targets = torch.full((1, pad_to), pad_id, dtype=torch.long)
    position_ids = torch.zeros((1, pad_to), dtype=torch.long)
    loss_mask = torch.zeros(1, pad_to)
    ref_logprobs = torch.zeros(1, pad_to)
    longest = max(lengths)
    segment_index = torch.full((len(sequences), longest), pad_to, dtype=torch.long)
    start = 0
    for i, (seq, n) in enumerate(zip(sequences, lengths)):
        span = slice(start, start + n)
        tokens[0, span] = torch.tensor(seq.tokens[:-1])
        targets[0, span] = torch.tensor(seq.tokens[1:])
        position_ids[0, span] = torch.arange(n)
        first = max(seq.prompt_len - 1, 0)  # position whose target is the first response token
        loss_mask[0, start + first : start + n] = 1
        if seq.ref_logprobs is not None and n > first:
            ref_logprobs[0, start + first : start + n] = torch.tensor(seq.ref_logprobs[: n - first])
        segment_index[i, :n] = torch.arange(start, start + n)
        start += n
    segments = lengths + ([pad_to - used] if pad_to > used else [])
    position_ids[0, used:] = torch.arange(pad_to - used)
    cu_seqlens = torch.zeros(len(segments) + 1, dtype=torch.int32)
    cu_seqlens[1:] = torch.tensor(segments).cumsum(0)
    return {
        "tokens": tokens,
        "position_ids": position_ids,
        "targets": targets,
        "loss_mask": loss_mask,
        "ref_logprobs": ref_logprobs,
        "advantages": torch.tensor([s.advantage for s in sequences], dtype=torch.float32),
        "ref_seq_logprobs": torch.tensor([s.ref_seq_logprob for s in sequences]),
        "cu_seqlens": cu_seqlens,
        "max_seqlen": max(segments),
        PACKED_KEY: segment_index,
    }


def unpack_segments(values: torch.Tensor, segment_index: torch.Tensor) -> torch.Tensor:
    """[1, T] per-position values of a packed row -> [s, L], one row per sequence, zero past
    each sequence's end (index T). Differentiable: gradients flow back to the row."""
    row = torch.cat([values[0], values.new_zeros(1)])
    return row[segment_index]


def crop_segment_index(segment_index: torch.Tensor, positions: slice, length: int) -> torch.Tensor:
    """`segment_index` for the row cut to `positions` (of a row of `length`): positions outside
    the cut (they carry no loss) point past its end, as padding does."""
    start = positions.start or 0
    stop = length if positions.stop is None else positions.stop
    shifted = segment_index - start
    inside = (segment_index >= start) & (segment_index < stop)
    return torch.where(inside, shifted, torch.full_like(shifted, stop - start))


def packed_seq_params(batch: dict):
    """megatron's `PackedSeqParams` (THD) for a packed micro-batch; None for a padded one."""
    if PACKED_KEY not in batch:
        return None
    from megatron.core.packed_seq_params import PackedSeqParams

    cu_seqlens = batch["cu_seqlens"].to(batch["tokens"].device)
    return PackedSeqParams(
        qkv_format="thd",
        cu_seqlens_q=cu_seqlens,
        cu_seqlens_kv=cu_seqlens,
        max_seqlen_q=batch["max_seqlen"],
        max_seqlen_kv=batch["max_seqlen"],
    )


def bins_of(rows: list[list], capacity: int) -> list[list[int]]:
    """Which rows (each a list of `Sequence`s: one, or a DPO (chosen, rejected) pair, kept
    together) share a packed micro-batch of at most `capacity` positions: first-fit
    decreasing over the rows' positions."""
    return first_fit_decreasing([_positions(row) for row in rows], capacity)


def sequences_of(group: list[list]) -> list:
    """The sequences of a group of rows in the order the losses read them: every row's first
    sequence, then every row's second (DPO: chosen ones, then rejected ones)."""
    return [row[k] for k in range(len(group[0])) for row in group]


def collate_rows(group: list[list], pad_multiple: int, fixed_length: int | None) -> dict:
    """One packed micro-batch of `group`'s rows, padded to a multiple of `pad_multiple`
    (8 x TP: sequence parallelism splits the positions over the TP ranks) or to
    `fixed_length` (pipeline parallelism's fixed shapes)."""
    used = sum(_positions(row) for row in group)
    pad_to = fixed_length or -(-used // pad_multiple) * pad_multiple
    return collate_packed(sequences_of(group), max(pad_to, used))


def packed_micro_batches(
    rows: list[list], capacity: int, pad_multiple: int, fixed_length: int | None
) -> list[dict]:
    """The packed micro-batches of one step's rows (`bins_of`, then `collate_rows`)."""
    return [
        collate_rows([rows[i] for i in members], pad_multiple, fixed_length)
        for members in bins_of(rows, capacity)
    ]


def _positions(row: list) -> int:
    return sum(len(s.tokens) - 1 for s in row)
