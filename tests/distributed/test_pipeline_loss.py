"""The loss through megatron's forward_backward_func (micro-batches, TP=2, PP=2) equals the
single-process reference: loss and every parameter's gradient."""

import re
import subprocess
import sys

import pytest

from tests.helpers.run import REPO, _env, run_torchrun

pytestmark = pytest.mark.distributed
WORKER = REPO / "tests" / "distributed" / "workers" / "pipeline_loss_check.py"


def _reference(work, loss, aggregation, impl="chunked"):
    cmd = [sys.executable, str(WORKER), "reference", str(work), loss, aggregation, impl]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize(
    "loss, aggregation, impl, tp, pp",
    [
        ("o1-pruner", "seq-mean", "chunked", 2, 1),
        ("o1-pruner", "seq-mean", "native", 1, 2),
        ("o1-pruner", "token-mean", "chunked", 2, 2),
        ("sft", "seq-mean", "chunked", 2, 1),
        ("dpo", "seq-mean", "chunked", 1, 2),
    ],
)
def test_parallel_loss_and_grads_match_single_process(tmp_path, loss, aggregation, impl, tp, pp):
    _reference(tmp_path, loss, aggregation)
    proc = run_torchrun(tp * pp, WORKER, "parallel", tmp_path, loss, aggregation, impl, tp, pp,
                        module=False)  # fmt: skip
    found = dict(re.findall(r"(\w+)=([0-9.e+-]+)", proc.stdout))
    assert found, proc.stdout
    assert float(found["loss_err"]) < 1e-6
    assert float(found["grad_err"]) < 1e-6 * max(1.0, float(found["grad_scale"]))
    assert float(found["grad_scale"]) > 0
