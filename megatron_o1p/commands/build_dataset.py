"""`o1p build-dataset`: flags -> BuildDatasetJob -> data.build_dataset.build_dataset."""

from __future__ import annotations

import argparse

from megatron_o1p.data.build_dataset import BuildDatasetConfig, BuildDatasetJob, build_dataset
from megatron_o1p.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    BuildDatasetJob.add_arguments(parser)
    parser.add_argument(
        "--reward-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reward hyper-parameter, e.g. target_length=1024 for l1 (repeatable)",
    )


def _reward_params(pairs: list[str]) -> dict[str, float]:
    """`--reward-param KEY=NUMBER` flags as {KEY: NUMBER}."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise ConfigError(f"--reward-param must be KEY=NUMBER, got {pair!r}")
    return params


def run(args: argparse.Namespace) -> int:
    scoring = BuildDatasetConfig.from_args(args, reward_params=_reward_params(args.reward_param))
    job = BuildDatasetJob.from_args(args, scoring=scoring)
    s = build_dataset(job.rollouts, job.out, job.scoring)
    print(
        f"o1p build-dataset: {s.problems} problems, {s.samples} samples -> {s.rows} rows "
        f"({s.out}), {s.sft_rows} SFT rows ({s.sft_out}), {s.dpo_pairs} DPO pairs ({s.dpo_out})",
        flush=True,
    )
    return 0
