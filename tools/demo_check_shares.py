"""How often a demo model's samples check, per level: the share of 0, 1, 2 checks and their
accuracy, from one round's graded rollouts (`<workdir>/roundN/graded`, which round N sampled
from its reference model).

    python tools/demo_check_shares.py runs/demo/round1/graded runs/demo/task/train_problems.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from megatron_o1p.data.shards import read_shards
from megatron_o1p.demo.task import check_shares, format_check_shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("graded", type=Path, help="a folder of graded rollout shards")
    parser.add_argument("problems", type=Path, help="the problems file it sampled (JSONL)")
    args = parser.parse_args(argv)
    with args.problems.open() as lines:
        level = {row["id"]: row["difficulty"] for row in map(json.loads, lines)}
    table = read_shards(args.graded, columns=["problem_id", "response_text", "correct"])
    samples = [
        (level[row["problem_id"]], row["response_text"], row["correct"])
        for row in table.to_pylist()
    ]
    print(format_check_shares(check_shares(samples)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
