"""`o1p analyze --rollouts GRADED --out DIR`: flags -> AnalyzeConfig -> analysis.analyze."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rollouts",
        type=Path,
        required=True,
        help="graded rollouts: the output directory of `o1p grade` (part-*.parquet)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="directory for length_disharmony.csv, summary.csv and length_disharmony.png",
    )
    parser.add_argument(
        "--intervals",
        type=int,
        default=4,
        help="length intervals per problem, by rank within the problem (default 4, as the paper)",
    )
    parser.add_argument(
        "--max-plot-problems",
        type=int,
        default=50,
        help="problems drawn as thin lines in the per-problem panel (default 50)",
    )


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.analysis import AnalyzeConfig, analyze

    cfg = AnalyzeConfig(
        rollouts=args.rollouts,
        out=args.out,
        intervals=args.intervals,
        max_plot_problems=args.max_plot_problems,
    )
    s = analyze(cfg)
    print(
        f"o1p analyze: {s.problems} problems, {s.samples} samples, {cfg.intervals} length "
        "intervals per problem (1 = shortest; accuracy and length averaged over problems)",
        flush=True,
    )
    print(s.table, flush=True)
    print(f"o1p analyze: wrote {', '.join(str(p) for p in s.paths)}", flush=True)
    return 0
