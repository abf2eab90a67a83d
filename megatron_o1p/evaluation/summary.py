"""`o1p evaluate`'s summary.json and its printed table.

summary.json:

    {"stage": "evaluate", "format_version": 1, "model": "/abs/model",
     "settings": {num_samples, temperature, top_p, seed, max_tokens, speed_prompt,
                  system_prompt, extract_mode, dtype, max_model_len, tensor_parallel_size},
     "benchmarks": {NAME: {file, sha256, preset, problem_field, answer_field, id_field, results,
                           num_problems, num_samples, num_responses, accuracy, pass_at_k,
                           majority_accuracy, mean_length, tokens, seconds, tokens_per_s,
                           truncated_frac, extracted_frac, grade_seconds, resumed}, ...},
     "average": {accuracy, pass_at_k, majority_accuracy, mean_length, seconds, tokens_per_s,
                 num_problems}          (plain means over benchmarks, as the paper's AVERAGE)
     "total": {num_problems, num_responses, tokens, seconds, tokens_per_s}}

Accuracies are fractions in [0, 1] (`metrics.py` defines each); benchmarks keep the
command-line order. `seconds` is the wall time of the benchmark's generation (vLLM's `generate`
call: prefill and decode of the whole batch; not the engine start, prompt building or grading,
which is `grade_seconds`); tokens_per_s = tokens / seconds. `o1p compare` reads this file;
`sha256` is the hash of the benchmark file's bytes, so runs are compared only on the same
problems.

Tested by tests/unit/evaluation/test_results.py and tests/e2e/test_evaluate_cli.py.
"""

from __future__ import annotations

from pathlib import Path

from megatron_o1p.data.problems import ProblemSource
from megatron_o1p.evaluation.metrics import average_and_total, benchmark_metrics

SUMMARY_NAME = "summary.json"
FORMAT_VERSION = 1


def benchmark_entry(
    source: ProblemSource,
    sha256: str,
    results: Path,
    rows: list[dict],
    stats: dict,
    resumed: bool,
) -> dict:
    """One benchmark's summary entry.

    Args:
        source: the benchmark file and its column mapping.
        sha256: the file's hash.
        results: the benchmark's results parquet.
        rows: its rows (at least the `records.EVALUATION_METRIC_COLUMNS`).
        stats: {"seconds", "grade_seconds"} of the run that generated the rows.
        resumed: the rows come from an earlier run.
    """
    m = benchmark_metrics(rows)
    seconds = float(stats["seconds"])
    return {
        "file": str(Path(source.path).resolve()),
        "sha256": sha256,
        "preset": source.preset,
        "problem_field": source.problem_field,
        "answer_field": source.answer_field,
        "id_field": source.id_field,
        "results": results.name,
        **m,
        "seconds": seconds,
        "tokens_per_s": m["tokens"] / seconds if seconds > 0 else 0.0,
        "grade_seconds": float(stats["grade_seconds"]),
        "resumed": resumed,
    }


def summary_document(model: str, settings: dict, per_benchmark: dict[str, dict]) -> dict:
    """The content of summary.json (layout in the module docstring)."""
    average, total = average_and_total(per_benchmark)
    return {
        "stage": "evaluate",
        "format_version": FORMAT_VERSION,
        "model": str(Path(model).resolve()),
        "settings": settings,
        "benchmarks": per_benchmark,
        "average": average,
        "total": total,
    }


def format_table(summary: dict) -> str:
    """The printed table: benchmark | n | acc | mean len | tokens/s | seconds (+ pass@K, maj@K
    for sampled evaluation), then the average over benchmarks (n and seconds: totals)."""
    k = summary["settings"]["num_samples"]
    head = ["benchmark", "n", "acc %"]
    if k > 1:
        head += [f"pass@{k} %", f"maj@{k} %"]
    head += ["mean len", "tokens/s", "seconds"]

    def line(name, m, n, seconds, rate):
        cells = [name, str(n), f"{100 * m['accuracy']:.1f}"]
        if k > 1:
            cells += [f"{100 * m['pass_at_k']:.1f}", f"{100 * m['majority_accuracy']:.1f}"]
        return cells + [f"{m['mean_length']:.1f}", f"{rate:.1f}", f"{seconds:.2f}"]

    rows = [
        line(name, m, m["num_problems"], m["seconds"], m["tokens_per_s"])
        for name, m in summary["benchmarks"].items()
    ]
    if len(summary["benchmarks"]) > 1:
        t = summary["total"]
        rows.append(
            line("average", summary["average"], t["num_problems"], t["seconds"], t["tokens_per_s"])
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = [" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    fmt.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(fmt)
