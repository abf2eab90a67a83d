"""`o1p evaluate`: flags -> EvaluateConfig -> evaluation.evaluate.run_evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.rollout.vllm_engine import add_engine_arguments, engine_config

_PER_BENCHMARK = "[NAME=]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--model", required=True, help="HF model folder to evaluate")
    p.add_argument(
        "--benchmark",
        action="append",
        required=True,
        metavar="NAME=FILE",
        help="a benchmark: its name (output NAME.parquet) and a .jsonl/.json/.parquet problems "
        "file; repeat for several",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument(
        "--num-samples", type=int, default=1, help="K responses per problem (1: greedy, the paper)"
    )
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (1.0)")
    p.add_argument("--seed", type=int, default=0, help="base seed; per-problem seeds derive")
    p.add_argument("--max-tokens", type=int, default=8192, help="response token limit (8192)")
    p.add_argument(
        "--preset",
        action="append",
        metavar=f"{_PER_BENCHMARK}PRESET",
        help="column preset math|gsm8k, for every benchmark or NAME=PRESET for one (repeatable)",
    )
    for flag, what in (
        ("--problem-field", "problem-text column"),
        ("--answer-field", "gold-answer column (verbatim)"),
        ("--id-field", "problem id column (default: row index)"),
    ):
        p.add_argument(
            flag,
            action="append",
            metavar=f"{_PER_BENCHMARK}FIELD",
            help=f"{what}, for every benchmark or NAME=FIELD for one",
        )
    p.add_argument(
        "--speed-prompt", choices=("normal", "fast"), default="normal", help="fast: paper suffix"
    )
    p.add_argument(
        "--extract",
        choices=("last", "first"),
        default="last",
        help="grade the last \\boxed{} after </think> (default) or the first (official code)",
    )
    p.add_argument("--grade-timeout", type=int, default=5, help="seconds per math-verify step")
    p.add_argument(
        "--grade-workers", type=int, default=0, help="math-verify processes (0: one per core)"
    )
    add_engine_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="re-evaluate results of another config")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.evaluation.evaluate import (
        Benchmark,
        EvaluateConfig,
        parse_benchmark,
        parse_per_benchmark,
        run_evaluate,
    )

    specs = [parse_benchmark(s) for s in args.benchmark]
    names = [name for name, _ in specs]
    per = {
        key: parse_per_benchmark(flag, getattr(args, key), names)
        for key, flag in (
            ("preset", "--preset"),
            ("problem_field", "--problem-field"),
            ("answer_field", "--answer-field"),
            ("id_field", "--id-field"),
        )
    }
    cfg = EvaluateConfig(
        engine=engine_config(args),
        benchmarks=[
            Benchmark(name, path, **{key: per[key][name] for key in per}) for name, path in specs
        ],
        out=args.out,
        num_samples=args.num_samples,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        max_tokens=args.max_tokens,
        speed_prompt=args.speed_prompt,
        extract_mode=args.extract,
        grade_timeout_s=args.grade_timeout,
        grade_workers=args.grade_workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    r = run_evaluate(cfg)
    print(
        f"o1p evaluate: {len(r.evaluated)} benchmark(s) evaluated, {len(r.skipped)} already "
        f"complete{' (' + ', '.join(r.skipped) + ')' if r.skipped else ''}, "
        f"{r.seconds:.1f} s -> {r.summary_path}",
        flush=True,
    )
    print(r.table, flush=True)
    return 0
