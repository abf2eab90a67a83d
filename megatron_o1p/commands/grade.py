"""`o1p grade IN OUT`: flags -> GradeConfig -> grading.grade.grade_file.

Tested by tests/e2e/test_grade_cli.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.grading.grade import GradeConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", type=Path, metavar="IN", help="rollouts (.jsonl, .parquet, or a shard directory)"
    )
    parser.add_argument(
        "output", type=Path, metavar="OUT", help="graded rows, same format (a directory for one)"
    )
    GradeConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.grading.grade import grade_file

    cfg = GradeConfig.from_args(args)
    s = grade_file(args.input, args.output, cfg)
    print(
        f"o1p grade: {s.rows} rows, accuracy {s.accuracy:.4f}, extracted {s.extraction_rate:.4f}, "
        f"truncated {s.truncated}, timeouts {s.timeouts}, {s.seconds:.1f} s -> {s.out_path}",
        flush=True,
    )
    return 0
