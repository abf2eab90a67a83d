"""`o1p build-dataset` flags -> BuildDatasetJob: N|all, --no-reward-clip, --reward-param, and
the one-line refusals, all raised when the config is made (before any file is read)."""

import argparse

import pytest

from megatron_o1p import rewards
from megatron_o1p.commands import build_dataset as command
from megatron_o1p.config import choices
from megatron_o1p.data.build_dataset import BuildDatasetConfig, BuildDatasetJob
from megatron_o1p.errors import ConfigError


def _job(*flags) -> BuildDatasetJob:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--rollouts", "graded", "--out", "data/train.parquet", *flags])
    scoring = BuildDatasetConfig.from_args(
        args, reward_params=command._reward_params(args.reward_param)
    )
    return BuildDatasetJob.from_args(args, scoring=scoring)


def test_defaults_are_the_official_recipe():
    job = _job()
    assert job.scoring == BuildDatasetConfig()
    cfg = job.scoring
    assert (cfg.lam, cfg.rows_per_problem, cfg.reward_clip) == (2.0, 2, (-2.0, 4.0))
    assert (cfg.normalize, cfg.reward, cfg.seed, cfg.reward_params) == (
        "zscore",
        "o1-pruner",
        0,
        {},
    )


def test_flags_reach_the_config():
    flags = {
        "--lambda": "5",
        "--rows-per-problem": "all",
        "--reward": "l1",
        "--reward-param": "target_length=20",
        "--seed": "7",
    }
    cfg = _job(
        *[item for pair in flags.items() for item in pair], "--reward-clip", "-1", "3"
    ).scoring
    assert (cfg.lam, cfg.rows_per_problem, cfg.reward_clip, cfg.seed) == (5.0, 0, (-1.0, 3.0), 7)
    assert cfg.reward_kwargs() == {"target_length": 20.0}
    assert _job("--rows-per-problem", "3").scoring.rows_per_problem == 3
    # --no-reward-clip wins wherever it stands
    assert _job("--no-reward-clip", "--reward-clip", "-1", "1").scoring.reward_clip is None


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rows-per-problem", "0"], "--rows-per-problem must be a positive integer or 'all'"),
        (["--rows-per-problem", "two"], "got 'two'"),
        (["--reward-clip", "3", "1"], "--reward-clip low must be <= high"),
        (["--reward", "l1"], "pass --reward-param target_length=VALUE"),
        (["--reward-param", "alpha=x"], "--reward-param must be KEY=NUMBER, got 'alpha=x'"),
        (["--reward-param", "beta=1"], "--reward o1-pruner takes no parameter 'beta'"),
        (["--out", "data/sft.parquet"], "--out must be a .parquet file other than sft.parquet"),
    ],
)
def test_bad_flags_are_refused_in_one_line(flags, message):
    with pytest.raises(ConfigError) as info:
        _job(*flags)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_reward_choices_are_the_reward_functions():
    assert tuple(rewards.REWARDS) == choices.REWARDS
