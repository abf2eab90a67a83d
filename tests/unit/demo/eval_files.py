"""Writes `o1p evaluate`-shaped output folders (results parquet + summary.json) for tests of
what reads them: the demo's oracle report and ablation table."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq


def write_eval(folder, levels: dict[str, list[tuple[str, bool, int]]]):
    """`levels`: benchmark -> [(problem, correct, length)], one greedy response each."""
    folder.mkdir(parents=True)
    benchmarks = {}
    for level, rows in levels.items():
        table = pa.table(
            {
                "problem_id": [str(i) for i in range(len(rows))],
                "sample_index": [0] * len(rows),
                "problem": [p for p, _, _ in rows],
                "correct": [c for _, c, _ in rows],
                "length": [n for _, _, n in rows],
            }
        )
        pq.write_table(table, folder / f"{level}.parquet")
        benchmarks[level] = {
            "sha256": f"test-file-{level}",
            "num_problems": len(rows),
            "accuracy": sum(c for _, c, _ in rows) / len(rows),
            "mean_length": sum(n for _, _, n in rows) / len(rows),
        }
    summary = {"stage": "evaluate", "benchmarks": benchmarks}
    (folder / "summary.json").write_text(json.dumps(summary))
