"""`o1p build-dataset`: flags -> BuildDatasetConfig -> data.build_dataset.build_dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.errors import ConfigError


def _rows_per_problem(text: str) -> int:
    if text == "all":
        return 0
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'all', got {text!r}"
        ) from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--rollouts", type=Path, required=True, help="graded shard dir or .parquet")
    p.add_argument("--out", type=Path, required=True, help="dataset .parquet (sft/dpo beside it)")
    p.add_argument("--lambda", dest="lam", type=float, default=2.0, help="eq. 10 lambda (2)")
    p.add_argument(
        "--rows-per-problem",
        type=_rows_per_problem,
        default=2,
        help="samples kept per problem: N or 'all' (2, official)",
    )
    p.add_argument(
        "--reward-clip",
        type=float,
        nargs=2,
        default=(-2.0, 4.0),
        metavar=("LOW", "HIGH"),
        help="clip rewards before normalising (-2 4, official)",
    )
    p.add_argument("--no-reward-clip", action="store_true", help="do not clip")
    p.add_argument("--normalize", choices=("zscore", "none"), default="zscore")
    p.add_argument(
        "--reward",
        choices=("o1-pruner", "kimi", "l1", "dapo-overlong", "shorter-better", "alp"),
        default="o1-pruner",
    )
    p.add_argument(
        "--reward-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reward hyper-parameter, e.g. target_length=1024 for l1 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the per-problem row choice")


def _params(pairs: list[str]) -> dict:
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
    from megatron_o1p.data.build_dataset import BuildDatasetConfig, build_dataset

    cfg = BuildDatasetConfig(
        lam=args.lam,
        rows_per_problem=args.rows_per_problem,
        reward_clip=None if args.no_reward_clip else tuple(args.reward_clip),
        normalize=args.normalize,
        reward=args.reward,
        reward_params=_params(args.reward_param),
        seed=args.seed,
    )
    s = build_dataset(args.rollouts, args.out, cfg)
    print(
        f"o1p build-dataset: {s.problems} problems, {s.samples} samples -> {s.rows} rows "
        f"({s.out}), {s.sft_rows} SFT rows ({s.sft_out}), {s.dpo_pairs} DPO pairs ({s.dpo_out})",
        flush=True,
    )
    return 0
