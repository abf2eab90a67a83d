"""evaluation/results.py: a benchmark's results file carries its config; reruns resume it or
refuse another config in one line; summary.json's entry and table read the rows back."""

import pytest

from megatron_o1p.data.problems import ProblemSource
from megatron_o1p.errors import ConfigError
from megatron_o1p.evaluation.results import read_metric_rows, recorded_results, write_results
from megatron_o1p.evaluation.summary import benchmark_entry, format_table, summary_document

ROWS = [
    {
        "problem_id": str(i),
        "sample_index": 0,
        "problem": "p",
        "answer": "5",
        "prompt_length": 4,
        "response": "\\boxed{5}",
        "response_ids": [1, 2],
        "extracted": "5",
        "correct": i == 0,
        "length": 2,
        "finish_reason": "stop",
        "time_s": 0.5,
    }
    for i in range(2)
]
CONFIG = {"stage": "evaluate", "max_tokens": 16}
STATS = {"seconds": 1.0, "grade_seconds": 0.1}


def test_results_resume_with_the_same_config_and_refuse_another(tmp_path):
    path = tmp_path / "math.parquet"
    assert recorded_results(path, CONFIG, overwrite=False) is None  # nothing yet
    write_results(path, ROWS, CONFIG, STATS)
    assert recorded_results(path, CONFIG, overwrite=False) == {"config": CONFIG, "stats": STATS}
    other = {**CONFIG, "max_tokens": 8}
    with pytest.raises(ConfigError, match="max_tokens: recorded 16, now 8.*--overwrite"):
        recorded_results(path, other, overwrite=False)
    assert recorded_results(path, other, overwrite=True) is None
    assert [r["correct"] for r in read_metric_rows(path)] == [True, False]


def test_summary_entry_and_table(tmp_path):
    path = tmp_path / "math.parquet"
    entry = benchmark_entry(ProblemSource(str(path), preset="math"), "ab", path, ROWS, STATS, False)
    assert entry["results"] == "math.parquet" and entry["preset"] == "math"
    assert entry["accuracy"] == 0.5 and entry["tokens"] == 4 and entry["tokens_per_s"] == 4.0
    summary = summary_document(str(tmp_path), {"num_samples": 1}, {"math": entry})
    assert list(summary) == [
        "stage",
        "format_version",
        "model",
        "settings",
        "benchmarks",
        "average",
        "total",
    ]
    assert summary["average"]["accuracy"] == 0.5 and summary["total"]["num_problems"] == 2
    head, rule, line = format_table(summary).splitlines()
    assert head.split(" | ")[:3] == ["benchmark", "n", "acc %"] and line.startswith("math")
