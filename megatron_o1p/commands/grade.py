"""`o1p grade IN OUT`: flags -> GradeConfig -> grading.grade.grade_file."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.grading.equivalence import DEFAULT_MEMORY_LIMIT_MB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", type=Path, metavar="IN", help="rollouts (.jsonl, .parquet, or a shard directory)"
    )
    parser.add_argument(
        "output", type=Path, metavar="OUT", help="graded rows, same format (a directory for one)"
    )
    parser.add_argument(
        "--extract",
        choices=("last", "first"),
        default="last",
        help="grade the last \\boxed{} after </think> (default) or the first (official code)",
    )
    parser.add_argument(
        "--timeout", type=int, default=5, help="whole seconds per math-verify step (default 5)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="math-verify processes (default 0: one per core, at most 16)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=DEFAULT_MEMORY_LIMIT_MB,
        help=f"address-space limit per worker in MiB, 0 = none (default {DEFAULT_MEMORY_LIMIT_MB})",
    )


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.grading.grade import GradeConfig, grade_file

    cfg = GradeConfig(
        extract_mode=args.extract,
        timeout_s=args.timeout,
        workers=args.workers,
        memory_limit_mb=args.memory_limit_mb,
    )
    s = grade_file(args.input, args.output, cfg)
    print(
        f"o1p grade: {s.rows} rows, accuracy {s.accuracy:.4f}, extracted {s.extraction_rate:.4f}, "
        f"truncated {s.truncated}, timeouts {s.timeouts}, {s.seconds:.1f} s -> {s.out_path}",
        flush=True,
    )
    return 0
