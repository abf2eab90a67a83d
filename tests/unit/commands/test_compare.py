"""`o1p compare` flags -> CompareConfig (with its AESWeights): names split at commas, and bad
names refused when the config is made, before any summary is read."""

import argparse
from pathlib import Path

import pytest

from megatron_o1p.commands import compare as command
from megatron_o1p.errors import ConfigError
from megatron_o1p.evaluation.aes import AESWeights
from megatron_o1p.evaluation.compare import CompareConfig


def _config(*flags) -> CompareConfig:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--baseline", "eval/base", "eval/dpo", "--out", "cmp", *flags])
    return CompareConfig.from_args(args, runs=args.runs)


def test_flags_reach_the_config_and_its_weights():
    cfg = _config()
    assert (cfg.baseline, cfg.runs, cfg.out) == (Path("eval/base"), [Path("eval/dpo")], Path("cmp"))
    assert cfg.names is None and cfg.weights == AESWeights()
    cfg = _config("--names", "B,D", "--alpha", "2", "--gamma", "4", "--paper-aes")
    assert cfg.names == ["B", "D"]
    assert cfg.weights == AESWeights(alpha=2.0, beta=3.0, gamma=4.0, paper=True)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--names", "a,b,c"], "--names has 3 name(s) for 2 methods"),
        (["--names", "a,"], "--names has an empty name"),
        (["--names", "a,a"], "two methods are named 'a'"),
        (["--beta", "-1"], "--beta must be a finite number >= 0"),
    ],
)
def test_bad_flags_are_refused_in_one_line(flags, message):
    with pytest.raises(ConfigError) as info:
        _config(*flags)
    assert message in str(info.value)
