"""The flag() field machinery: one field gives the flag, its type, default and help."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from megatron_o1p.config.flags import Flags, flag, require, shared
from megatron_o1p.errors import ConfigError


@dataclass
class Inner(Flags):
    depth: int = flag(3, "how deep")


@dataclass
class Outer(Flags):
    out: Path = shared("out", "where it goes")
    rate: float = flag(0.5, "a rate")
    label: str | None = flag(None, "a label")
    fast: bool = flag(False, "go fast")
    checks: bool = flag(True, "skip the checks", name="--no-checks")
    inner: Inner = field(default_factory=Inner)
    note: str = "not a flag"

    def __post_init__(self):
        require(self.rate > 0, f"--rate must be > 0, got {self.rate}")


def _parser(**kwargs) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    Outer.add_arguments(parser, **kwargs)
    return parser


def test_types_defaults_switches_and_nested_configs():
    args = _parser().parse_args(["--out", "o", "--rate", "2", "--fast", "--no-checks"])
    cfg = Outer.from_args(args)
    assert cfg.out == Path("o") and cfg.rate == 2.0 and cfg.label is None
    assert cfg.fast is True and cfg.checks is False
    assert cfg.inner == Inner(depth=3) and cfg.note == "not a flag"


def test_missing_default_makes_the_flag_required():
    with pytest.raises(SystemExit):
        _parser().parse_args([])


def test_validation_runs_when_the_config_is_made():
    args = _parser().parse_args(["--out", "o", "--rate", "-1"])
    with pytest.raises(ConfigError, match="--rate must be > 0, got -1.0"):
        Outer.from_args(args)


def test_only_and_skip_select_flags_of_nested_configs_too():
    options = {a.dest for a in _parser(only=("out", "depth"))._actions}
    assert {"out", "depth"} <= options and "rate" not in options
    options = {a.dest for a in _parser(skip=("depth",))._actions}
    assert "rate" in options and "depth" not in options


def test_help_shows_the_default_and_records_where_the_flag_is_defined():
    actions = {a.dest: a for a in _parser()._actions}
    assert actions["rate"].help == "a rate (default: %(default)s)"
    assert actions["fast"].help == "go fast"  # a switch: no default shown
    assert actions["out"].o1p_defined_in == "megatron_o1p.config.common"
    assert actions["rate"].o1p_defined_in == __name__


def test_every_flag_needs_help():
    with pytest.raises(ValueError, match="help"):
        flag(1)
    with pytest.raises(KeyError, match="SHARED_FLAGS"):
        shared("no_such_flag")
