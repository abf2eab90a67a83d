"""`o1p sample`: flags -> SampleConfig -> rollout.sample.run_sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.rollout.vllm_engine import add_engine_arguments, engine_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="HF model folder (the reference model)")
    p.add_argument(
        "--problems", required=True, help="JSONL/JSON/parquet file or `datasets` name/folder"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory of rollout shards")
    p.add_argument("--num-samples", type=int, default=16, help="K samples per problem (16)")
    p.add_argument("--temperature", type=float, default=0.5, help="(0.5, official code)")
    p.add_argument("--top-p", type=float, default=0.8, help="(0.8, official code)")
    p.add_argument("--max-tokens", type=int, default=8192, help="response token limit (8192)")
    p.add_argument("--seed", type=int, default=0, help="base seed; per-problem seeds derive")
    p.add_argument("--preset", choices=("math", "gsm8k"), default=None, help="column preset")
    p.add_argument("--problem-field", default=None, help="problem-text column")
    p.add_argument("--answer-field", default=None, help="gold-answer column (verbatim)")
    p.add_argument("--id-field", default=None, help="problem id column (default: row index)")
    p.add_argument("--split", default="test", help="`datasets` split (test)")
    p.add_argument("--dataset-config", default=None, help="`datasets` config, e.g. main")
    p.add_argument(
        "--speed-prompt", choices=("normal", "fast"), default="normal", help="fast: paper suffix"
    )
    p.add_argument("--problems-per-shard", type=int, default=64, help="unit of resume (64)")
    p.add_argument("--num-shards", type=int, default=1, help="N data-parallel invocations")
    p.add_argument("--shard-index", type=int, default=0, help="this invocation's index < N")
    add_engine_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace output of another config")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.data.problems import ProblemSource
    from megatron_o1p.rollout.sample import SampleConfig, run_sample

    cfg = SampleConfig(
        source=ProblemSource(
            path=args.problems,
            preset=args.preset,
            problem_field=args.problem_field,
            answer_field=args.answer_field,
            id_field=args.id_field,
            split=args.split,
            dataset_config=args.dataset_config,
        ),
        engine=engine_config(args),
        out=args.out,
        num_samples=args.num_samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        speed_prompt=args.speed_prompt,
        problems_per_shard=args.problems_per_shard,
        num_shards=args.num_shards,
        shard_index=args.shard_index,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    s = run_sample(cfg)
    rate = s.tokens / s.seconds if s.seconds else 0.0
    print(
        f"o1p sample: shard {cfg.shard_index}/{cfg.num_shards}: {s.shards_written} shards "
        f"written ({s.rows_written} rows, {s.tokens} tokens, {rate:.0f} tok/s), "
        f"{s.shards_skipped} of {s.shards_total} already complete, {s.seconds:.1f} s -> {cfg.out}",
        flush=True,
    )
    return 0
