"""`token_logprobs` (native, chunked, triton) vs fp64 log_softmax+gather at TP=1, 2 and 4."""

import pytest

from tests.helpers.run import REPO, run_torchrun

pytestmark = pytest.mark.distributed
WORKER = REPO / "tests" / "distributed" / "workers" / "logprobs_check.py"


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_all_implementations_match_reference(tp, monkeypatch):
    # The Triton kernels run through Triton's interpreter on the CPU.
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    proc = run_torchrun(tp, WORKER, module=False)
    assert f"checks passed: 20 (TP={tp})" in proc.stdout, proc.stdout + proc.stderr[-3000:]
