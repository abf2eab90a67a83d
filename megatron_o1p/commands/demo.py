"""`o1p demo`: the embedded end-to-end demo on tiny models (CPU, minutes)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("runs/demo"),
        help="where every stage writes its output",
    )


def run(args: argparse.Namespace) -> int:
    from megatron_o1p.demo.roundtrip import format_table, run_roundtrip_demo

    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = run_roundtrip_demo(args.workdir)
    print("\nHF <-> Megatron conversion (tiny models, fp32, CPU):")
    print(format_table(rows))
    ok = all(r["round trip bitwise"] for r in rows) and all(
        v < 1e-4 for r in rows for k, v in r.items() if k.startswith("max |logprob")
    )
    print("demo:", "PASS" if ok else "FAIL")
    return 0 if ok else 1
