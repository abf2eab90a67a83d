"""`o1p analyze` flags -> AnalyzeConfig, validated when it is made."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.analysis import AnalyzeConfig
from megatron_o1p.commands import analyze as command
from megatron_o1p.errors import ConfigError


def _config(*flags) -> AnalyzeConfig:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return AnalyzeConfig.from_args(parser.parse_args(["--rollouts", "graded", *flags]))


def test_flags_reach_the_config(tmp_path):
    cfg = _config("--out", str(tmp_path / "a"))
    assert (cfg.rollouts, cfg.out) == (Path("graded"), tmp_path / "a")
    assert (cfg.intervals, cfg.max_plot_problems) == (4, 50)
    cfg = _config("--out", "o", "--intervals", "3", "--max-plot-problems", "0")
    assert (cfg.intervals, cfg.max_plot_problems) == (3, 0)


def test_bad_intervals_are_refused():
    with pytest.raises(ConfigError, match="--intervals must be >= 1, got 0"):
        _config("--out", "o", "--intervals", "0")
