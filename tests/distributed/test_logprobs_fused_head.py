"""`head_token_logprobs` (fused-head) vs fp64 and vs chunked on the logits at TP=1, 2 and 4,
with padded vocab rows (and at TP=4 a shard that is all padding), fp32 and bf16."""

import pytest

from tests.helpers.run import REPO, run_torchrun

pytestmark = pytest.mark.distributed
WORKER = REPO / "tests" / "distributed" / "workers" / "logprobs_fused_head_check.py"


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_fused_head_matches_reference(tp):
    proc = run_torchrun(tp, WORKER, module=False)
    assert f"checks passed: 4 (TP={tp})" in proc.stdout, proc.stdout + proc.stderr[-3000:]
