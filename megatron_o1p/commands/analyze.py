"""`o1p analyze --rollouts GRADED --out DIR`: flags -> AnalyzeConfig -> analysis.analyze."""

from __future__ import annotations

import argparse

from megatron_o1p.analysis import AnalyzeConfig, analyze


def add_arguments(parser: argparse.ArgumentParser) -> None:
    AnalyzeConfig.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = AnalyzeConfig.from_args(args)
    summary = analyze(cfg)
    print(
        f"o1p analyze: {summary.problems} problems, {summary.samples} samples, {cfg.intervals} "
        "length intervals per problem (1 = shortest; accuracy and length averaged over problems)",
        flush=True,
    )
    print(summary.table, flush=True)
    print(f"o1p analyze: wrote {', '.join(str(p) for p in summary.paths)}", flush=True)
    return 0
