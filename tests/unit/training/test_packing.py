"""Packing, by hand: first-fit decreasing, one packed row's fields, the gather back to one row
per sequence (and its gradient), the cut of the output layer, and the step's packed batches."""

import pytest
import torch

from megatron_o1p.training.data import Sequence, StepBatches, make_sequence, pack_capacity
from megatron_o1p.training.packing import (
    PACKED_KEY,
    collate_packed,
    crop_segment_index,
    first_fit_decreasing,
    sequences_of,
    unpack_segments,
)


def test_first_fit_decreasing_by_hand():
    # largest first: 8 -> new bin, 5 -> new bin, 4 -> bin of 5, 3 -> new bin, 2 -> bin of 8
    assert first_fit_decreasing([5, 3, 8, 2, 4], 10) == [[2, 3], [0, 4], [1]]
    assert first_fit_decreasing([3, 3, 3], 6) == [[0, 1], [2]]  # ties by index
    assert first_fit_decreasing([12, 1], 10) == [[0], [1]]  # too big: a bin of its own
    assert first_fit_decreasing([], 10) == []


def test_collate_packed_by_hand():
    first = Sequence(tokens=[1, 2, 3], prompt_len=1, ref_logprobs=[-1.0, -2.0], advantage=0.5)
    second = Sequence(tokens=[4, 5], prompt_len=1, ref_logprobs=[-3.0], advantage=-1.0)
    batch = collate_packed([first, second], pad_to=5)
    assert batch["tokens"].tolist() == [[1, 2, 4, 0, 0]]
    assert batch["targets"].tolist() == [[2, 3, 5, 0, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 0, 1]]  # restart per segment
    assert batch["loss_mask"].tolist() == [[1, 1, 1, 0, 0]]
    assert batch["ref_logprobs"].tolist() == [[-1.0, -2.0, -3.0, 0.0, 0.0]]
    # the padding is a segment too: the segments cover every position
    assert batch["cu_seqlens"].tolist() == [0, 2, 3, 5] and batch["max_seqlen"] == 2
    assert batch["cu_seqlens"].dtype == torch.int32
    assert batch[PACKED_KEY].tolist() == [[0, 1], [2, 5]]  # 5: past the row
    assert batch["advantages"].tolist() == [0.5, -1.0]
    with pytest.raises(ValueError, match="do not fit"):
        collate_packed([first, second], pad_to=2)


def test_unpack_segments_gathers_rows_and_their_gradients():
    values = torch.tensor([[1.0, 2.0, 3.0, 9.0]], requires_grad=True)
    index = torch.tensor([[0, 1], [2, 4]])
    rows = unpack_segments(values, index)
    assert rows.tolist() == [[1.0, 2.0], [3.0, 0.0]]
    (rows * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    assert values.grad.tolist() == [[1.0, 2.0, 3.0, 0.0]]  # the padding slot takes no grad


def test_crop_segment_index_points_outside_positions_past_the_cut():
    index = torch.tensor([[0, 1, 2], [3, 4, 6]])  # 6: padding of a row of 6
    cropped = crop_segment_index(index, slice(1, 4), length=6)
    assert cropped.tolist() == [[3, 0, 1], [2, 3, 3]]  # 3: past the 3-position cut


def test_sequences_of_keeps_dpo_pairs_in_the_losses_order():
    assert sequences_of([["c1", "r1"], ["c2", "r2"]]) == ["c1", "c2", "r1", "r2"]


def _rows(lengths, pairs=False):
    rows = []
    for i, n in enumerate(lengths):
        seq = make_sequence(list(range(2)), list(range(10, 10 + n)), 32, advantage=float(i))
        rejected = make_sequence([0, 1], [7] * (n // 2 + 1), 32, advantage=float(i))
        rows.append([seq, rejected] if pairs else [seq])
    return rows


@pytest.mark.parametrize("pairs", [False, True], ids=["sequences", "dpo-pairs"])
def test_a_steps_packed_batches_hold_its_rows_once_within_capacity(pairs):
    rows = _rows([3, 30, 7, 12, 25, 5, 9, 18], pairs)
    batches = StepBatches(rows, 8, 2, dp_rank=0, dp_size=1, seed=0)
    capacity = pack_capacity(32, 2, len(rows[0]))
    packed = batches.micro_batches(0, 8, None, capacity)
    padded = batches.micro_batches(0, 8, None)
    assert len(packed) < len(padded)
    seen = []
    for batch in packed:
        used = int(batch["cu_seqlens"][-1])
        real = batch[PACKED_KEY].shape[0]
        assert batch["tokens"].shape == (1, used) and used % 8 == 0
        assert int(batch["cu_seqlens"][real]) <= capacity
        seen += batch["advantages"].tolist()
        if pairs:  # each pair in one batch: chosen ones first, their rejected after
            half = real // 2
            assert batch["advantages"][:half].tolist() == batch["advantages"][half:].tolist()
    expected = [float(i) for i in range(8)] * (2 if pairs else 1)
    assert sorted(seen) == sorted(expected)
    assert batches.micro_batches(0, 8, None, capacity)[0]["tokens"].equal(packed[0]["tokens"])
    fixed = batches.micro_batches(0, 8, capacity, capacity)  # pipeline parallel: fixed rows
    assert {b["tokens"].shape[1] for b in fixed} == {capacity}
