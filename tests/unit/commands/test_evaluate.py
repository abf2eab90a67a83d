"""`o1p evaluate`'s flags: the column flags are ProblemSource's, per benchmark; sampling and
grading come from their configs with evaluate's greedy defaults."""

import argparse

import pytest

from megatron_o1p.commands import evaluate as command
from megatron_o1p.config.grading import GradingConfig
from megatron_o1p.config.sampling import SamplingConfig
from megatron_o1p.data.problems import ProblemSource
from megatron_o1p.errors import ConfigError


def _args(*argv):
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(["--model", "hf", "--out", "out", *argv])


def test_columns_per_benchmark_and_for_all():
    args = _args(
        "--benchmark",
        "a=a.jsonl",
        "--benchmark",
        "b=b.jsonl",
        "--preset",
        "math",
        "--preset",
        "b=gsm8k",
        "--id-field",
        "a=uid",
    )
    a, b = command.benchmarks_from_args(args)
    assert (a.name, b.name) == ("a", "b")
    assert a.source == ProblemSource("a.jsonl", preset="math", id_field="uid")
    assert b.source == ProblemSource("b.jsonl", preset="gsm8k")


def test_a_bad_preset_names_its_benchmark():
    args = _args("--benchmark", "a=a.jsonl", "--preset", "a=aime")
    with pytest.raises(ConfigError, match="benchmark a: unknown preset 'aime'"):
        command.benchmarks_from_args(args)


def test_the_config_from_flags_is_greedy_with_the_grading_flags():
    args = _args(
        "--benchmark",
        "a=a.jsonl",
        "--max-tokens",
        "64",
        "--seed",
        "5",
        "--grade-workers",
        "2",
        "--grade-memory-limit-mb",
        "512",
        "--extract",
        "first",
    )
    cfg = command.EvaluateConfig.from_args(
        args,
        benchmarks=command.benchmarks_from_args(args),
        engine=command.EngineConfig.from_args(args, seed=args.seed),
    )
    assert cfg.sampling == SamplingConfig.greedy(max_tokens=64, seed=5)
    assert cfg.grading == GradingConfig(extract_mode="first", workers=2, memory_limit_mb=512)
    assert cfg.engine.seed == 5 and cfg.progress and not cfg.overwrite
    assert cfg.settings()["extract_mode"] == "first"


def test_sampled_evaluation_needs_a_temperature():
    args = _args("--benchmark", "a=a.jsonl", "--num-samples", "4")
    with pytest.raises(ConfigError, match="--num-samples 4 with --temperature 0"):
        command.EvaluateConfig.from_args(
            args,
            benchmarks=command.benchmarks_from_args(args),
            engine=command.EngineConfig.from_args(args),
        )
