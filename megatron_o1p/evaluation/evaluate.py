"""The evaluate stage: accuracy and response length of one model on benchmarks (paper Table 2).

    o1p evaluate --model pruned-hf --benchmark math=math500.jsonl --benchmark gsm8k=gsm8k.jsonl \\
        --preset math=math --preset gsm8k=gsm8k --out eval/pruned
    # sampled evaluation: mean accuracy over K samples (pass@1), pass@K, majority vote
    o1p evaluate ... --num-samples 8 --temperature 0.6 --top-p 0.95 --seed 0

In-process (the demo):

    from megatron_o1p.config.engine import EngineConfig
    from megatron_o1p.config.sampling import SamplingConfig
    from megatron_o1p.data.problems import ProblemSource
    from megatron_o1p.evaluation.evaluate import Benchmark, EvaluateConfig, run_evaluate
    result = run_evaluate(EvaluateConfig(
        engine=EngineConfig(model="pruned-hf"), out=Path("eval/pruned"),
        benchmarks=[Benchmark("math", ProblemSource("math500.jsonl", preset="math"))],
        sampling=SamplingConfig.greedy(max_tokens=512)))
    result.summary["benchmarks"]["math"]["accuracy"]

(The answers are graded in spawned math-verify processes: a script that calls `run_evaluate`
must guard its top level with `if __name__ == "__main__":`.)

Evaluate = sample + grade. One vLLM engine (built once for all benchmarks) generates every
request of a benchmark in one batch through the sample stage's own path
(`rollout/sample.sample_problems`: the same prompts, per-problem seeds and rows), greedy by
default (`SamplingConfig.greedy`: temperature 0, one response per problem, as the paper
evaluates) or K samples per problem; the responses are graded by the grade stage's own
`grading/grade.grade_responses` with a `GradingConfig` (the last box after `</think>`;
math-verify in a sandboxed pool; a response cut off at `--max-tokens` is incorrect). Metrics
are defined in `metrics.py`, summary.json in `summary.py`.

Outputs, each written under a temporary name and renamed into place (`atomic.py`):

    OUT/NAME.parquet   `records.EVALUATION_SCHEMA`, one row per (problem, sample):
                       problem_id, sample_index, problem, answer (gold), prompt_length,
                       response, response_ids, extracted, correct, length (response tokens =
                       len(response_ids), the EOS token that ended a response included, as
                       `o1p sample` counts), finish_reason, time_s (`metrics.apportion_time`)
    OUT/summary.json   per benchmark, the average over benchmarks and the totals

Resume. Each benchmark's parquet carries its config (model path, sampling settings, prompt,
extraction, the benchmark file's sha256 and column mapping) in its schema metadata. A rerun
skips a benchmark whose parquet exists (it is renamed into place only when complete) with the
same config, refuses one with another config in one line unless `--overwrite` (then it is
evaluated again), and evaluates the rest; summary.json is rewritten over the benchmarks named
on the command line. The model is identified by its path, as in `o1p sample`.

Tested by tests/unit/commands/test_evaluate.py and tests/e2e/test_evaluate_cli.py.
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.atomic import write_json
from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.config.flags import Flags, require, shared
from megatron_o1p.config.grading import GradingConfig
from megatron_o1p.config.sampling import SamplingConfig
from megatron_o1p.data.problems import COLUMN_FIELDS, Problem, ProblemSource, load_problems
from megatron_o1p.errors import DataError
from megatron_o1p.evaluation.metrics import apportion_time
from megatron_o1p.evaluation.results import (
    file_sha256,
    read_metric_rows,
    recorded_results,
    write_results,
)
from megatron_o1p.evaluation.summary import (
    FORMAT_VERSION,
    SUMMARY_NAME,
    benchmark_entry,
    format_table,
    summary_document,
)
from megatron_o1p.grading.equivalence import Grader

# Benchmark names become file names and CSV columns; "average"/"avg" name the average.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED_NAMES = ("average", "avg", "summary")
# The SamplingConfig fields recorded in summary.json and in each results file, in that order.
_RECORDED_SAMPLING = (
    "num_samples",
    "temperature",
    "top_p",
    "seed",
    "max_tokens",
    "speed_prompt",
    "system_prompt",
    "enable_thinking",
)


@dataclass
class Benchmark:
    """One benchmark: a name (the output file's stem) and a local problems file."""

    name: str
    """Benchmark name: letters, digits, `_`, `.`, `-`; names `OUT/NAME.parquet`."""
    source: ProblemSource
    """A JSONL / JSON / parquet problems file and its column mapping (`data/problems.py`)."""


@dataclass
class EvaluateConfig(Flags):
    """Settings of the evaluate stage (flags map one-to-one onto fields; `--benchmark` and the
    per-benchmark column flags are parsed into `benchmarks` by `commands/evaluate.py`)."""

    engine: EngineConfig
    """vLLM engine settings (model folder, TP, dtype, KV cache, context limit)."""
    benchmarks: list[Benchmark]
    """The benchmarks, in output order; names must be unique."""
    out: Path = shared("out", "output directory: NAME.parquet per benchmark and summary.json")
    """Output directory."""
    sampling: SamplingConfig = field(default_factory=SamplingConfig.greedy)
    """K, temperature, top-p, token limit, seed, prompt (greedy by default)."""
    grading: GradingConfig = field(default_factory=GradingConfig)
    """Extraction mode and the math-verify pool."""
    overwrite: bool = shared(
        "overwrite", "evaluate again a benchmark whose results hold another config", default=False
    )
    """Re-evaluate a benchmark whose parquet was written with another config."""
    progress: bool = shared("no_progress", "no progress bar", default=True)
    """vLLM's progress bar on stderr, one per benchmark."""

    def __post_init__(self):
        self.out = Path(self.out)
        self.benchmarks = list(self.benchmarks)
        k, temperature = self.sampling.num_samples, self.sampling.temperature
        require(bool(self.benchmarks), "no benchmark given; pass --benchmark NAME=FILE")
        require(
            k == 1 or temperature > 0,
            f"--num-samples {k} with --temperature 0 gives {k} identical greedy responses; "
            "pass --temperature > 0 (e.g. 0.6) or --num-samples 1",
        )
        seen = set()
        for b in self.benchmarks:
            require(
                bool(_NAME_RE.match(b.name)) and b.name.lower() not in _RESERVED_NAMES,
                f"benchmark name {b.name!r} is not usable; use letters, digits, '_', '.', '-' "
                f"(not {', '.join(_RESERVED_NAMES)}), e.g. --benchmark math500=FILE",
            )
            require(
                b.name not in seen,
                f"benchmark name {b.name!r} is given twice; give each --benchmark a distinct NAME",
            )
            seen.add(b.name)

    def generation(self) -> dict:
        """The sampling and grading settings that determine the rows, in recorded order."""
        s = self.sampling
        return {
            **{key: getattr(s, key) for key in _RECORDED_SAMPLING},
            "extract_mode": self.grading.extract_mode,
        }

    def settings(self) -> dict:
        """The generation and engine settings, as summary.json records them."""
        e = self.engine
        return {
            **self.generation(),
            "dtype": e.dtype,
            "max_model_len": e.max_model_len,
            "tensor_parallel_size": e.tensor_parallel_size,
        }

    def recorded(self, benchmark: Benchmark, sha256: str) -> dict:
        """What determines one benchmark's output (checked on resume)."""
        source = benchmark.source
        config = {
            "stage": "evaluate",
            "format_version": FORMAT_VERSION,
            "model": str(Path(self.engine.model).resolve()),
            "dtype": self.engine.dtype,
            "sha256": sha256,
            **{key: getattr(source, key) for key in COLUMN_FIELDS},
            **self.generation(),
        }
        return json.loads(json.dumps(config))


@dataclass
class EvaluateResult:
    """What one `run_evaluate` call did and found."""

    summary: dict
    """The content of summary.json."""
    table: str
    """The printed table (benchmark | n | acc | mean len | tokens/s | seconds)."""
    evaluated: list[str] = field(default_factory=list)
    """Benchmarks generated and graded by this call."""
    skipped: list[str] = field(default_factory=list)
    """Benchmarks already complete with the same config (resume)."""
    seconds: float = 0.0
    """Wall time of the call."""
    summary_path: Path | None = None


@dataclass
class _Prepared:
    benchmark: Benchmark
    sha256: str
    problems: list[Problem]
    config: dict
    out: Path
    resume: dict | None = None
    """The recorded metadata of a complete parquet with this config (skip it)."""


def run_evaluate(cfg: EvaluateConfig) -> EvaluateResult:
    """Evaluate the model on every benchmark without complete results; write summary.json.

    Args:
        cfg: stage settings.

    Returns:
        The summary (as written to OUT/summary.json), the printed table, and which
        benchmarks were evaluated or skipped.

    Raises:
        DataError: a missing benchmark file, a problem without an answer, a prompt longer
            than the context.
        ConfigError: a benchmark's results hold another config (without --overwrite).
        SetupError: no vLLM, no tokenizer with a chat template, no math-verify.
    """
    start = time.monotonic()
    prepared = [_prepare(cfg, b) for b in cfg.benchmarks]
    cfg.out.mkdir(parents=True, exist_ok=True)
    result = EvaluateResult(summary={}, table="")
    pending = [p for p in prepared if p.resume is None]
    entries = _evaluate_pending(cfg, pending) if pending else {}
    result.evaluated = list(entries)
    for item in prepared:
        if item.resume is not None:
            rows = read_metric_rows(item.out)
            entries[item.benchmark.name] = _entry(item, rows, item.resume["stats"], True)
            result.skipped.append(item.benchmark.name)
    per_benchmark = {p.benchmark.name: entries[p.benchmark.name] for p in prepared}
    summary = summary_document(cfg.engine.model, cfg.settings(), per_benchmark)
    result.summary_path = write_json(cfg.out / SUMMARY_NAME, summary)
    result.summary = summary
    result.table = format_table(summary)
    result.seconds = time.monotonic() - start
    return result


def _prepare(cfg: EvaluateConfig, b: Benchmark) -> _Prepared:
    """Check a benchmark's file and its recorded output before anything is generated."""
    file = Path(b.source.path)
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "no such file"
        raise DataError(
            f"benchmark {b.name}: {what}; pass --benchmark {b.name}=FILE with a .jsonl, .json "
            "or .parquet problems file",
            path=str(b.source.path),
        )
    problems = load_problems(b.source)
    sha = file_sha256(file)
    item = _Prepared(b, sha, problems, cfg.recorded(b, sha), cfg.out / f"{b.name}.parquet")
    item.resume = recorded_results(item.out, item.config, overwrite=cfg.overwrite)
    return item


def _evaluate_pending(cfg: EvaluateConfig, pending: list[_Prepared]) -> dict[str, dict]:
    """Generate, grade and write every pending benchmark with one engine and one pool."""
    from megatron_o1p.data.prompts import load_tokenizer
    from megatron_o1p.rollout.vllm_engine import build_engine

    tokenizer = load_tokenizer(cfg.engine.model, enable_thinking=cfg.sampling.enable_thinking)
    llm = build_engine(cfg.engine)
    entries = {}
    try:
        with cfg.grading.build() as grader:
            for item in pending:
                rows, stats = _evaluate_benchmark(llm, tokenizer, grader, cfg, item)
                write_results(item.out, rows, item.config, stats)
                entries[item.benchmark.name] = _entry(item, rows, stats, False)
    finally:
        del llm
        gc.collect()
    return entries


def _evaluate_benchmark(
    llm, tokenizer, grader: Grader, cfg: EvaluateConfig, item: _Prepared
) -> tuple[list[dict], dict]:
    """One benchmark's rows (EVALUATION_SCHEMA dicts) and its {seconds, grade_seconds}."""
    from megatron_o1p.data.records import evaluation_record
    from megatron_o1p.grading.grade import grade_responses
    from megatron_o1p.rollout.sample import sample_problems

    rollouts, seconds = sample_problems(
        llm,
        tokenizer,
        item.problems,
        cfg.sampling,
        source_path=str(item.benchmark.source.path),
        logprobs=False,
        use_tqdm=_progress(cfg, item.benchmark.name),
    )
    times = apportion_time([r.length for r in rollouts], seconds)
    grade_start = time.monotonic()
    extracted, correct = grade_responses(
        [r.response_text for r in rollouts],
        [r.answer for r in rollouts],
        [r.finish_reason for r in rollouts],
        cfg.grading,
        grader,
    )
    stats = {"seconds": seconds, "grade_seconds": time.monotonic() - grade_start}
    rows = [
        evaluation_record(r, e, bool(c), t)
        for r, e, c, t in zip(rollouts, extracted, correct, times)
    ]
    return rows, stats


def _entry(item: _Prepared, rows: list[dict], stats: dict, resumed: bool) -> dict:
    return benchmark_entry(item.benchmark.source, item.sha256, item.out, rows, stats, resumed)


def _progress(cfg: EvaluateConfig, name: str):
    """vLLM's `use_tqdm`: one bar per benchmark on stderr, or False."""
    if not cfg.progress:
        return False
    from tqdm import tqdm

    def bar(*iterable, **kwargs):
        if iterable:  # vLLM's "Rendering prompts" pass over the inputs: no bar
            return iterable[0]
        kwargs["desc"] = f"evaluate {name}"
        return tqdm(file=sys.stderr, unit="seq", **kwargs)

    return bar
