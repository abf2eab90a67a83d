"""Metrics of one evaluated benchmark and their average over benchmarks (paper Table 2).

Per benchmark (`benchmark_metrics`):
- accuracy: the fraction of correct responses over all problems and samples, i.e. per-problem
  accuracy averaged over problems (pass@1); with K = 1 the plain accuracy.
- pass_at_k: the fraction of problems with at least one correct response among the K.
- majority_accuracy: per problem, the most frequent extracted answer (compared after the
  grader's string normalisation; responses cut off at the limit or without an answer do not
  vote; a tie goes to the answer whose first vote has the lowest sample index) is correct.
- mean_length: mean response tokens over all responses; tokens: their sum.

Time per response (`apportion_time`). vLLM decodes all requests of a benchmark together, so a
single request has no time of its own: its latency in the batch overlaps with every other
request's. Each response gets its share of the benchmark's generation time, apportioned by
generated tokens: time_s = seconds * length / tokens (an equal share when no tokens were
generated). The shares sum to the benchmark's `seconds`. (vLLM 0.32 can time requests,
`RequestOutput.metrics`, only with stat logging on, which `build_engine` leaves off; those
per-request latencies would not sum to the wall time either.)

Over benchmarks (`average_and_total`): plain means, as the paper's AVERAGE, and totals.
Pure Python on row dicts (the columns of `records.EVALUATION_METRIC_COLUMNS`).

Tested by tests/e2e/test_evaluate_cli.py and tests/unit/evaluation/test_results.py.
"""

from __future__ import annotations

from collections.abc import Sequence

_AVERAGED = (
    "accuracy",
    "pass_at_k",
    "majority_accuracy",
    "mean_length",
    "seconds",
    "tokens_per_s",
    "num_problems",
)


def _normalize(answer: str) -> str:
    from megatron_o1p.grading.forms import normalize_answer

    return normalize_answer(answer)


def _majority_correct(group: list[dict]) -> bool:
    """Whether the most voted answer of one problem's samples (sorted by index) is correct."""
    votes: dict[str, list[dict]] = {}
    for r in group:
        if r["extracted"] is None or r["finish_reason"] == "length":
            continue
        votes.setdefault(_normalize(r["extracted"]), []).append(r)
    if not votes:
        return False
    # Most votes; ties -> the answer voted first (dicts keep insertion order).
    best = max(votes.values(), key=len)
    return bool(best[0]["correct"])


def benchmark_metrics(rows: Sequence[dict]) -> dict:
    """Accuracy, pass@K, majority-vote accuracy and lengths of one benchmark's rows.

    Args:
        rows: dicts with problem_id, sample_index, extracted, correct, length, finish_reason
            (every problem with the same number of samples K).

    Returns:
        num_problems, num_samples (K), num_responses, accuracy, pass_at_k,
        majority_accuracy, mean_length, tokens, truncated_frac, extracted_frac.
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(str(r["problem_id"]), []).append(r)
    n = len(rows)
    pass_k = majority = 0
    for group in groups.values():
        group = sorted(group, key=lambda r: r["sample_index"])
        pass_k += any(r["correct"] for r in group)
        majority += _majority_correct(group)
    num_problems = len(groups)
    tokens = sum(int(r["length"]) for r in rows)
    sizes = {len(g) for g in groups.values()}
    return {
        "num_problems": num_problems,
        "num_samples": max(sizes) if sizes else 0,
        "num_responses": n,
        "accuracy": sum(bool(r["correct"]) for r in rows) / n if n else 0.0,
        "pass_at_k": pass_k / num_problems if num_problems else 0.0,
        "majority_accuracy": majority / num_problems if num_problems else 0.0,
        "mean_length": tokens / n if n else 0.0,
        "tokens": tokens,
        "truncated_frac": sum(r["finish_reason"] == "length" for r in rows) / n if n else 0.0,
        "extracted_frac": sum(r["extracted"] is not None for r in rows) / n if n else 0.0,
    }


def apportion_time(lengths: Sequence[int], seconds: float) -> list[float]:
    """Each response's share of the batch's generation time, by generated tokens.

    Returns:
        [N] seconds summing to `seconds` (equal shares when no tokens were generated).
    """
    total = sum(lengths)
    if not lengths:
        return []
    if total == 0:
        return [seconds / len(lengths)] * len(lengths)
    return [seconds * length / total for length in lengths]


def average_and_total(per_benchmark: dict[str, dict]) -> tuple[dict, dict]:
    """The plain means over benchmarks (the paper's AVERAGE) and the totals.

    Args:
        per_benchmark: name -> summary entry (with the `benchmark_metrics` keys, seconds and
            tokens_per_s).

    Returns:
        (average, total): average of accuracy, pass_at_k, majority_accuracy, mean_length,
        seconds, tokens_per_s, num_problems; total num_problems, num_responses, tokens,
        seconds, tokens_per_s.
    """
    values = list(per_benchmark.values())
    average = {k: sum(v[k] for v in values) / len(values) for k in _AVERAGED}
    tokens = sum(v["tokens"] for v in values)
    seconds = sum(v["seconds"] for v in values)
    total = {
        "num_problems": sum(v["num_problems"] for v in values),
        "num_responses": sum(v["num_responses"] for v in values),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
    }
    return average, total
