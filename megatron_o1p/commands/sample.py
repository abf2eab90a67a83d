"""`o1p sample`: flags -> SampleConfig -> rollout.sample.run_sample.

Tested by tests/e2e/test_sample_cli.py and tests/e2e/test_sample_kill.py.
"""

from __future__ import annotations

import argparse

from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.rollout.sample import SampleConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    SampleConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.rollout.sample import run_sample

    # One --seed: the requests' base seed (SamplingConfig) also seeds the engine.
    cfg = SampleConfig.from_args(args, engine=EngineConfig.from_args(args, seed=args.seed))
    s = run_sample(cfg)
    rate = s.tokens / s.seconds if s.seconds else 0.0
    print(
        f"o1p sample: shard {cfg.shard_index}/{cfg.num_shards}: {s.shards_written} shards "
        f"written ({s.rows_written} rows, {s.tokens} tokens, {rate:.0f} tok/s), "
        f"{s.shards_skipped} of {s.shards_total} already complete, {s.seconds:.1f} s -> {cfg.out}",
        flush=True,
    )
    return 0
