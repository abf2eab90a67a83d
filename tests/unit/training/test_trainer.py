"""The trainer's step checks, without a model: a non-finite loss or gradient norm stops the run
with one line naming the iteration; a finite one, or a norm megatron did not compute, passes.
And `o1p train --ratio sequence` prints its warning first, on rank 0 only.
(The whole loop runs in tests/distributed/test_train.py, divergence included.)"""

import argparse

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


class _Stop(Exception):
    pass


@pytest.mark.parametrize("ratio, warns", [("sequence", True), ("token", False)])
def test_train_command_prints_the_ratio_warning_first(monkeypatch, capsys, ratio, warns):
    """`o1p train`'s path (commands/train.run -> trainer.train) prints the warning on rank 0
    before any work: the build (preflight, process groups) is stopped at its start."""
    from megatron_o1p.commands import train as command
    from megatron_o1p.config.loss import SEQUENCE_RATIO_WARNING
    from megatron_o1p.training import trainer

    def stop(cfg):
        raise _Stop

    monkeypatch.setattr(trainer, "_build", stop)
    monkeypatch.delenv("RANK", raising=False)
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(
        ["--load", "m", "--data", "d.parquet", "--save", "run", "--ratio", ratio]
    )
    with pytest.raises(_Stop):
        command.run(args)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ([SEQUENCE_RATIO_WARNING] if warns else [])
    monkeypatch.setenv("RANK", "1")  # another torchrun rank, before the process group exists
    with pytest.raises(_Stop):
        command.run(args)
    assert capsys.readouterr().out == ""
