"""The `fake_o1p` fixture: the demo's `o1p` subprocesses replaced by `FakeO1p` (see there)."""

import subprocess
from pathlib import Path

import pytest

from megatron_o1p.demo import task as demo_task
from tests.unit.demo.fake_o1p import FakeO1p


@pytest.fixture
def fake_o1p(monkeypatch):
    commands = []

    def popen(cmd, **kwargs):
        proc = FakeO1p(cmd, **kwargs)
        commands.append(proc.args)
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(
        demo_task, "build_base_model", lambda out_dir, **_: Path(out_dir).mkdir(parents=True)
    )
    return commands
