"""--pack-sequences: one step of packed micro-batches gives the loss and every gradient of the
same step padded, for every loss, at TP=1, TP=2 and PP=2 (the worker runs megatron's schedule
both ways on one model and prints the differences)."""

import re
import subprocess
import sys

import pytest

from tests.helpers.run import REPO, _env, run_torchrun

pytestmark = pytest.mark.distributed
WORKER = REPO / "tests" / "distributed" / "workers" / "packing_check.py"
LINE = re.compile(
    r"^(?P<loss>[\w -]+): micro_batches=(?P<padded>\d+)/(?P<packed>\d+) loss=(?P<value>\S+) "
    r"loss_err=(?P<loss_err>\S+) grad_err=(?P<grad_err>\S+) scale=(?P<scale>\S+)$",
    re.M,
)


@pytest.mark.parametrize("tp, pp", [(1, 1), (2, 1), (1, 2)], ids=["tp1", "tp2", "pp2"])
def test_packed_step_equals_padded_step(tp, pp):
    if tp * pp == 1:
        cmd = [sys.executable, str(WORKER)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        proc = run_torchrun(tp * pp, WORKER, tp, pp, module=False)
    found = {m["loss"]: m for m in LINE.finditer(proc.stdout)}
    assert set(found) == {"o1-pruner seq-mean", "o1-pruner token-mean", "sft", "dpo"}, proc.stdout
    for name, m in found.items():
        assert int(m["packed"]) < int(m["padded"]), name  # rows really were packed together
        assert float(m["loss_err"]) < 1e-6 * max(1.0, abs(float(m["value"]))), name
        assert float(m["grad_err"]) < 1e-6 * max(1.0, float(m["scale"])), name
        assert float(m["scale"]) > 0, name
