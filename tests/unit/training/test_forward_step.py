"""forward_step's forward-only mode refuses a request it cannot serve before running anything
(its runs through megatron's schedules are checked in tests/distributed: test_ref_logprobs,
test_verify, test_tp_checkpoint)."""

import pytest

from megatron_o1p.training.forward_step import FORWARD_OUTPUTS, forward_only


def test_outputs():
    assert FORWARD_OUTPUTS == ("logprobs", "logits")


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="output='hidden'"):
        forward_only([], None, [], output="hidden")


def test_logprobs_need_the_vocab_size():
    with pytest.raises(ValueError, match="needs the model's vocab_size"):
        forward_only([], None, [], output="logprobs")
