"""`o1p compare --baseline DIR RUN_DIR... --out DIR`: flags -> CompareConfig ->
evaluation.compare.run_compare."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.evaluation.compare import CompareConfig, run_compare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="other `o1p evaluate` output dirs"
    )
    CompareConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = CompareConfig.from_args(args, runs=args.runs)
    result = run_compare(cfg)
    print(result.markdown, flush=True)
    print(f"o1p compare: wrote {', '.join(str(p) for p in result.paths)}", flush=True)
    return 0
