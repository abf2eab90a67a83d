"""The demo measured against its oracle: how much of the avoidable reasoning a model removed.

The task knows, for every test item, the shortest trace that is right (`task.oracle_response`:
no check where the first pass is right, one where it slipped). The tokens between the
baseline's length and the oracle's are the avoidable ones; a model's share of them removed is
`evaluation.stats.avoidable_removed`. Accuracies carry Wilson 95% intervals, and the model is
paired with the baseline item by item (exact McNemar test), per level and over all items.

Tested by tests/unit/demo/test_oracle.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.demo.task import TaskConfig, oracle_length
from megatron_o1p.evaluation.stats import (
    avoidable_removed,
    discordant,
    mcnemar_exact,
    wilson_interval,
)


@dataclass(frozen=True)
class LevelResult:
    """One difficulty level (or "all") of a model against the baseline and the oracle."""

    level: str
    items: int
    baseline_length: float
    oracle_length: float
    model_length: float
    baseline_correct: int
    model_correct: int
    p_value: float
    """Exact McNemar, model vs baseline on the same items."""

    @property
    def removed(self) -> float:
        return avoidable_removed(self.baseline_length, self.oracle_length, self.model_length)

    def accuracy(self, correct: int) -> tuple[float, float, float]:
        """(accuracy, Wilson low, Wilson high)."""
        return (correct / self.items, *wilson_interval(correct, self.items))


def _read(path: Path) -> dict[str, dict]:
    """problem_id -> {problem, correct, length} of one greedy results file."""
    import pyarrow.parquet as pq

    columns = ["problem_id", "sample_index", "problem", "correct", "length"]
    rows = pq.read_table(path, columns=columns).to_pylist()
    return {r["problem_id"]: r for r in rows if r["sample_index"] == 0}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _level(level: str, baseline: list[dict], model: list[dict], task: TaskConfig) -> LevelResult:
    b_correct = [bool(r["correct"]) for r in baseline]
    m_correct = [bool(r["correct"]) for r in model]
    only_baseline, only_model = discordant(b_correct, m_correct)
    return LevelResult(
        level=level,
        items=len(baseline),
        baseline_length=_mean([r["length"] for r in baseline]),
        oracle_length=_mean([oracle_length(r["problem"], task) for r in baseline]),
        model_length=_mean([r["length"] for r in model]),
        baseline_correct=sum(b_correct),
        model_correct=sum(m_correct),
        p_value=mcnemar_exact(only_baseline, only_model),
    )


def oracle_report(baseline: Path, model: Path, task: TaskConfig) -> list[LevelResult]:
    """Per level of the baseline's benchmarks, then "all": the `o1p evaluate` output folder
    `model` against the `baseline` one (greedy, the same test files)."""
    levels = list(json.loads((baseline / "summary.json").read_text())["benchmarks"])
    results, all_base, all_model = [], [], []
    for level in levels:
        base = _read(baseline / f"{level}.parquet")
        other = _read(model / f"{level}.parquet")
        if set(base) != set(other):
            raise ValueError(f"{model / level}.parquet: not the baseline's items")
        ids = sorted(base)
        pairs = [base[i] for i in ids], [other[i] for i in ids]
        results.append(_level(level, *pairs, task))
        all_base += pairs[0]
        all_model += pairs[1]
    results.append(_level("all", all_base, all_model, task))
    return results


def format_report(rows: list[LevelResult], model: str) -> str:
    """The oracle table, one line per level."""
    head = (
        f"{'level':<6}{'items':>6}{'baseline':>10}{'oracle':>8}{'model':>8}"
        f"{'avoidable removed':>19}   accuracy baseline -> model [95% Wilson]   McNemar p"
    )
    lines = [f"Greedy length against the oracle (tokens; model = {model}):", head]
    for r in rows:
        acc_b, acc_m = r.accuracy(r.baseline_correct), r.accuracy(r.model_correct)
        lines.append(
            f"{r.level:<6}{r.items:>6}{r.baseline_length:>10.1f}{r.oracle_length:>8.1f}"
            f"{r.model_length:>8.1f}{100 * r.removed:>18.0f}%   "
            f"{_pct(acc_b)} -> {_pct(acc_m)}   {r.p_value:.2g}"
        )
    return "\n".join(lines)


def _pct(acc: tuple[float, float, float]) -> str:
    value, low, high = acc
    return f"{100 * value:5.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
