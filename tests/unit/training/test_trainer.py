"""The trainer's step checks, without a model: a non-finite loss or gradient norm stops the run
with one line naming the iteration; a finite one, or a norm megatron did not compute, passes.
(The whole loop runs in tests/distributed/test_train.py, divergence included.)"""

import pytest

from megatron_o1p.errors import O1pError, TrainingError
from megatron_o1p.training.reporting import StepReport
from megatron_o1p.training.trainer import _check_finite


def _report(loss: float, grad_norm: float | None) -> StepReport:
    return StepReport(
        metrics={"loss": loss, "tokens": 10.0},
        lr=1e-3,
        grad_norm=grad_norm,
        update_skipped=grad_norm is None,
        truncated_frac=0.0,
        tokens=10,
    )


@pytest.mark.parametrize("loss, grad_norm", [(0.5, 1.0), (-3.0, None), (0.0, 0.0)])
def test_finite_steps_pass(loss, grad_norm):
    _check_finite(3, _report(loss, grad_norm))


@pytest.mark.parametrize(
    "loss, grad_norm, what",
    [
        (float("nan"), 1.0, "the loss is nan"),
        (float("inf"), None, "the loss is inf"),
        (0.5, float("nan"), "the gradient norm is nan"),
        (0.5, float("-inf"), "the gradient norm is -inf"),
    ],
)
def test_non_finite_stops_naming_the_iteration(loss, grad_norm, what):
    with pytest.raises(TrainingError) as err:
        _check_finite(7, _report(loss, grad_norm))
    message = str(err.value)
    assert isinstance(err.value, O1pError)  # the CLI prints it as one line
    assert message.startswith(f"iteration 7: {what}") and "\n" not in message
    assert "lower --lr" in message
