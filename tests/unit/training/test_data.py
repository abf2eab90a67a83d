"""StepBatches over the memory-mapped dataset is StepBatches over the eager rows: for every loss,
data-parallel rank, epoch and padding rule, the same rows per step and bitwise the same
micro-batch tensors, hence bitwise the same loss; and the step report's lengths agree."""

import pytest
import torch

from megatron_o1p.config.loss import LossConfig
from megatron_o1p.testing import eager_data
from megatron_o1p.training.data import StepBatches, padding_rule
from megatron_o1p.training.forward_step import compute_loss
from megatron_o1p.training.token_dataset import open_dataset
from tests.helpers.toy_data import write_toy_dataset

VOCAB = 1000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "train.parquet", rows=45)


def _both(data, loss, seq_length, dp_rank, dp_size):
    eager = eager_data.to_sequences(eager_data.load_rows(data, loss), loss, seq_length)
    lazy = open_dataset(data, loss, seq_length)
    args = (8, 2, dp_rank, dp_size, 1234)
    return StepBatches(eager, *args), StepBatches(lazy, *args)


@pytest.mark.parametrize("loss", ["o1-pruner", "sft", "dpo"])
@pytest.mark.parametrize("seq_length, dp_rank, dp_size, pipelined", [(12, 0, 1, False),
                         (12, 1, 2, True), (64, 3, 4, False)])  # fmt: skip
def test_the_same_micro_batches_and_loss_as_the_eager_rows(
    data, loss, seq_length, dp_rank, dp_size, pipelined
):
    old, new = _both(data, loss, seq_length, dp_rank, dp_size)
    assert old.steps_per_epoch == new.steps_per_epoch == 5
    padding = padding_rule(1, pipelined, seq_length)
    cfg = LossConfig(loss=loss)
    for iteration in range(12):  # past two epoch boundaries: new permutations
        assert new.global_rows_of_step(iteration) == old.global_rows_of_step(iteration)
        assert new.rows_of_step(iteration) == old.rows_of_step(iteration)
        before, after = (
            old.micro_batches(iteration, *padding),
            new.micro_batches(iteration, *padding),
        )
        assert len(before) == len(after) == 8 // 2 // dp_size
        for a, b in zip(before, after):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
            logits = torch.randn(
                *a["tokens"].shape, VOCAB, generator=torch.Generator().manual_seed(iteration)
            )
            loss_a = compute_loss(cfg, a, logits.clone(), vocab_size=VOCAB)[0]
            loss_b = compute_loss(cfg, b, logits.clone(), vocab_size=VOCAB)[0]
            assert torch.equal(loss_a, loss_b)


def test_the_step_report_lengths_are_the_eager_sequences(data):
    old, new = _both(data, "dpo", 12, 0, 1)
    rows = old.global_rows_of_step(3)
    sequences = [s for r in rows for s in old.examples[r]]
    assert new.examples.sequence_lengths(rows) == [(len(s.tokens), s.truncated) for s in sequences]
    assert any(s.truncated for s in sequences)


@pytest.mark.parametrize("as_array", [False, True], ids=["lists", "numpy views"])
def test_make_sequence_cuts_prompt_response_and_ref_logprobs_by_hand(as_array):
    import numpy as np

    from megatron_o1p.training.data import make_sequence

    def col(values, dtype):
        return np.asarray(values, dtype=dtype) if as_array else list(values)

    seq = make_sequence(
        col([1, 2, 3], "int32"),
        col([4, 5, 6, 7], "int32"),
        4,  # keep 5 tokens: the prompt and two response tokens
        ref_logprobs=col([-0.5, -0.25, -1.0, -2.0], "float32"),
        advantage=1.5,
    )
    assert (seq.tokens, seq.prompt_len, seq.truncated) == ([1, 2, 3, 4, 5], 3, True)
    assert seq.ref_logprobs == [-0.5, -0.25] and seq.advantage == 1.5
    assert all(type(t) is int for t in seq.tokens)

    whole = make_sequence(col([1, 2], "int32"), col([3], "int32"), 4)
    assert (whole.tokens, whole.truncated) == ([1, 2, 3], False)
    long_prompt = make_sequence(
        col(range(1, 8), "int32"), col([8], "int32"), 4, ref_logprobs=col([-1.0], "float32")
    )
    assert (long_prompt.tokens, long_prompt.ref_logprobs) == ([1, 2, 3, 4, 5], [])
