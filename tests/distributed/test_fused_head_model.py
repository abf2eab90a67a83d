"""`--logprob-impl fused-head` through the megatron model and schedule (DDP, finalize_model_grads)
gives chunked's loss and gradients: TP2xPP2 (the tied copy on the last stage) and TP2 with
sequence parallelism, tied and untied embeddings, fp32 and bf16."""

import re

import pytest

from tests.helpers.run import REPO, run_torchrun

pytestmark = pytest.mark.distributed
WORKER = REPO / "tests" / "distributed" / "workers" / "fused_head_model_check.py"
# (loss, gradient relative to the largest gradient): fp32 exact up to summation order; bf16
# runs the same GEMMs in bf16 through four layers.
TOLERANCE = {"float32": (1e-6, 1e-6), "bfloat16": (1e-3, 3e-2)}


@pytest.mark.parametrize("tp, pp, extra", [(2, 2, []), (2, 1, ["sp"])], ids=["tp2pp2", "tp2sp"])
def test_fused_head_matches_chunked_through_the_schedule(tp, pp, extra):
    proc = run_torchrun(tp * pp, WORKER, tp, pp, *extra, module=False)
    cases = re.findall(r"case tied=(\w+) dtype=(\w+).*?: (.*)", proc.stdout)
    assert len(cases) == 4, proc.stdout + proc.stderr[-3000:]
    for tied, dtype, figures in cases:
        found = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.e+-]+)", figures)}
        loss_tol, grad_tol = TOLERANCE[dtype]
        assert found["loss_err"] < loss_tol, (tied, dtype, figures)
        assert found["grad_err"] < grad_tol * found["grad_scale"], (tied, dtype, figures)
        assert found["grad_scale"] > 0
