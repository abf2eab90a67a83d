"""TrainingReporter's console line: megatron's layout (the tests read `| loss: X`), and a
skipped update is reported on the line of its window and counted for TensorBoard. Rank 0 of
a world of one is faked; nothing else is."""

import re

import pytest

from megatron_o1p.training import reporting
from megatron_o1p.training.reporting import StepReport, TrainingReporter


@pytest.fixture
def reporter(monkeypatch):
    monkeypatch.setattr(reporting.dist, "get_rank", lambda: 0)
    monkeypatch.setattr(reporting.dist, "get_world_size", lambda: 1)
    return TrainingReporter(total_iters=4, log_interval=2)


def _step(loss: float, *, skipped: bool = False) -> StepReport:
    return StepReport(
        metrics={"loss": loss, "loss/clip_frac": 0.25, "tokens": 6.0},
        lr=5e-4,
        grad_norm=None if skipped else 0.75,
        update_skipped=skipped,
        truncated_frac=0.0,
        tokens=6,
    )


def test_one_line_per_interval_in_megatrons_layout(reporter, capsys):
    reporter.step(1, _step(1.5))
    assert capsys.readouterr().out == ""  # not a log iteration
    reporter.step(2, _step(1.25))
    line = capsys.readouterr().out.strip()
    assert line.startswith("iteration      2/4 | elapsed time per iteration (ms): ")
    assert re.findall(r"\| loss: ([-0-9.E+]+)", line) == ["1.250000E+00"]
    assert "| learning rate: 5.000E-04 |" in line and "| grad norm: 0.750 |" in line
    assert "| clip frac: 0.2500 |" in line and "| truncated: 0.000 |" in line
    assert "skipped" not in line and re.search(r"\| ETA: \d+:\d\d:\d\d$", line)


def test_a_skipped_update_is_reported_and_counted(reporter, capsys):
    reporter.step(1, _step(1.5, skipped=True))
    reporter.step(2, _step(1.25))
    line = capsys.readouterr().out
    assert "| skipped updates: 1 |" in line and "grad norm: 0.750" in line
    reporter.step(3, _step(1.0))
    reporter.step(4, _step(0.5))
    assert "skipped" not in capsys.readouterr().out  # counted per log window
    assert reporter.skipped_updates == 1  # the run's total (TensorBoard optim/skipped_updates)
