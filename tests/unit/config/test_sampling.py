"""SamplingConfig: sample's defaults, evaluate's greedy defaults, one-line validation."""

import argparse

import pytest

from megatron_o1p.config.sampling import EVALUATION_DEFAULTS, SamplingConfig
from megatron_o1p.data.prompts import SYSTEM_PROMPT
from megatron_o1p.errors import ConfigError


def test_defaults_are_the_official_rollout_settings():
    s = SamplingConfig()
    assert (s.num_samples, s.temperature, s.top_p, s.max_tokens, s.seed) == (16, 0.5, 0.8, 8192, 0)
    assert s.speed_prompt == "normal" and s.system_prompt == SYSTEM_PROMPT


def test_greedy_is_evaluates_defaults_in_code_and_in_flags():
    g = SamplingConfig.greedy(max_tokens=512)
    assert (g.num_samples, g.temperature, g.top_p, g.max_tokens) == (1, 0.0, 1.0, 512)
    parser = argparse.ArgumentParser()
    SamplingConfig.add_arguments(parser)
    parser.set_defaults(**EVALUATION_DEFAULTS)
    assert SamplingConfig.from_args(parser.parse_args([])) == SamplingConfig.greedy()
    args = parser.parse_args(["--num-samples", "4", "--temperature", "0.6", "--seed", "3"])
    assert SamplingConfig.from_args(args) == SamplingConfig.greedy(
        num_samples=4, temperature=0.6, seed=3
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 0}, "--num-samples must be >= 1, got 0"),
        ({"temperature": -0.1}, "--temperature must be >= 0"),
        ({"top_p": 0.0}, r"--top-p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"--top-p must be in \(0, 1\]"),
        ({"max_tokens": 0}, "--max-tokens must be >= 1"),
        ({"speed_prompt": "slow"}, "--speed-prompt must be one of"),
    ],
)
def test_bad_values_are_refused_when_made(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SamplingConfig(**kwargs)


@pytest.mark.parametrize(
    "argv, thinking", [([], True), (["--enable-thinking"], True), (["--no-thinking"], False)]
)
def test_thinking_is_one_flag_spelled_two_ways(argv, thinking):
    parser = argparse.ArgumentParser()
    SamplingConfig.add_arguments(parser)
    assert SamplingConfig.from_args(parser.parse_args(argv)).enable_thinking is thinking
    (action,) = [a for a in parser._actions if a.dest == "enable_thinking"]
    assert action.option_strings == ["--enable-thinking", "--no-thinking"]
    assert "(default" not in action.help
