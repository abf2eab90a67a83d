"""`o1p compare --baseline DIR RUN_DIR... --out DIR`: flags -> CompareConfig ->
evaluation.compare.run_compare."""

from __future__ import annotations

import argparse
from pathlib import Path

from megatron_o1p.evaluation.aes import ALPHA, BETA, GAMMA


def add_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument(
        "--baseline", type=Path, required=True, help="the baseline's `o1p evaluate` output dir"
    )
    p.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="other `o1p evaluate` output dirs"
    )
    p.add_argument("--out", type=Path, required=True, help="dir for compare.csv/.md/.png")
    p.add_argument("--alpha", type=float, default=ALPHA, help=f"length weight ({ALPHA:g})")
    p.add_argument("--beta", type=float, default=BETA, help=f"accuracy-gain weight ({BETA:g})")
    p.add_argument("--gamma", type=float, default=GAMMA, help=f"accuracy-loss weight ({GAMMA:g})")
    p.add_argument(
        "--paper-aes",
        action="store_true",
        help="reproduce the paper's printed Table 2: +beta*|dAcc| even when accuracy drops",
    )
    p.add_argument(
        "--names",
        default=None,
        help="comma-separated method names, the baseline first (default: dir basenames)",
    )


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.evaluation.aes import AESWeights
    from megatron_o1p.evaluation.compare import CompareConfig, run_compare

    cfg = CompareConfig(
        baseline=args.baseline,
        runs=args.runs,
        out=args.out,
        names=args.names.split(",") if args.names is not None else None,
        weights=AESWeights(
            alpha=args.alpha, beta=args.beta, gamma=args.gamma, paper=args.paper_aes
        ),
    )
    r = run_compare(cfg)
    print(r.markdown, flush=True)
    print(f"o1p compare: wrote {', '.join(str(p) for p in r.paths)}", flush=True)
    return 0
