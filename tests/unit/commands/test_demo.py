"""`o1p demo` flags -> DemoConfig."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.commands import demo as command
from megatron_o1p.demo.settings import DemoConfig


def _config(*flags) -> DemoConfig:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return DemoConfig.from_args(parser.parse_args(list(flags)))


def test_defaults_and_flags():
    assert _config() == DemoConfig(Path("runs/demo"), "full", False)
    cfg = _config("--workdir", "w", "--size", "ci", "--conversion-only")
    assert cfg == DemoConfig(Path("w"), "ci", True)


def test_unknown_size_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        _config("--size", "huge")
