"""Fault points do nothing unless O1P_FAULT_POINT names them, and then hold the process."""

import pytest

from megatron_o1p.testing import faults


@pytest.fixture
def held(monkeypatch):
    """Seconds each matched point would have slept (the sleep itself is replaced)."""
    sleeps = []
    monkeypatch.setattr(faults.time, "sleep", sleeps.append)
    return sleeps


def test_no_variable_no_effect(monkeypatch, held, capsys):
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    faults.fault_point("save.written", iteration=4)
    assert held == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "spec, matched",
    [
        ("save.written", True),
        ("save.written:iteration=4", True),
        ("save.written:iteration=2", False),
        ("save.renamed:iteration=4", False),
        ("save.written:rank=0", False),  # a key the point does not pass never matches
    ],
)
def test_named_point_holds_the_process(monkeypatch, held, capsys, spec, matched):
    monkeypatch.setenv(faults.ENV_VAR, spec)
    faults.fault_point("save.written", iteration=4)
    out = capsys.readouterr().out
    if matched:
        assert held == [faults.PAUSE_SECONDS]
        assert out == "o1p test hook: paused at save.written (iteration=4)\n"
    else:
        assert held == [] and out == ""
