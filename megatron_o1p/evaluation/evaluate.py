"""The evaluate stage: accuracy and response length of one model on benchmarks (paper Table 2).

    o1p evaluate --model pruned-hf --benchmark math=math500.jsonl --benchmark gsm8k=gsm8k.jsonl \\
        --preset math=math --preset gsm8k=gsm8k --out eval/pruned
    # sampled evaluation: mean accuracy over K samples (pass@1), pass@K, majority vote
    o1p evaluate ... --num-samples 8 --temperature 0.6 --top-p 0.95 --seed 0

In-process (the demo):

    from megatron_o1p.evaluation.evaluate import Benchmark, EvaluateConfig, run_evaluate
    from megatron_o1p.rollout.vllm_engine import EngineConfig
    result = run_evaluate(EvaluateConfig(
        engine=EngineConfig(model="pruned-hf"), out=Path("eval/pruned"),
        benchmarks=[Benchmark("math", "math500.jsonl", preset="math")], max_tokens=512))
    result.summary["benchmarks"]["math"]["accuracy"]

(The answers are graded in spawned math-verify processes: a script that calls `run_evaluate`
must guard its top level with `if __name__ == "__main__":`.)

Per benchmark, one vLLM engine (built once for all benchmarks) generates every request of the
benchmark in one batch: greedy by default (temperature 0, one response per problem, as the
paper evaluates), or K samples per problem. Prompts, answer extraction and grading are those of
`o1p sample` and `o1p grade` (chat template with the `\\boxed{}` system prompt, `--speed-prompt
fast` for the fast-solving baseline; the last box after `</think>`; math-verify in a sandboxed
pool; a response cut off at `--max-tokens` is incorrect).

Outputs, each written under a temporary name and renamed into place:

    OUT/NAME.parquet   one row per (problem, sample): problem_id, sample_index, problem, answer
                       (gold), prompt_length, response, response_ids, extracted, correct,
                       length (response tokens = len(response_ids), the EOS token that ended a
                       response included, as `o1p sample` counts), finish_reason, time_s
    OUT/summary.json   per benchmark, the average over benchmarks and the totals (layout below)

Metrics (per benchmark; `benchmark_metrics`):
- accuracy: the fraction of correct responses over all problems and samples, i.e. per-problem
  accuracy averaged over problems (pass@1); with K = 1 the plain accuracy.
- pass_at_k: the fraction of problems with at least one correct response among the K.
- majority_accuracy: per problem, the most frequent extracted answer (compared after the
  grader's string normalisation; responses cut off at the limit or without an answer do not
  vote; a tie goes to the answer whose first vote has the lowest sample index) is correct.
- mean_length: mean response tokens over all responses; tokens: their sum.
- seconds: wall time of the benchmark's generation (vLLM's `generate` call: prefill and decode
  of the whole batch; not the engine start, prompt building or grading, which is
  `grade_seconds`); tokens_per_s = tokens / seconds.

Time per response (`time_s`). vLLM decodes all requests of a benchmark together, so a single
request has no time of its own: its latency in the batch overlaps with every other request's.
We report each response's share of the benchmark's generation time, apportioned by generated
tokens: time_s = seconds * length / tokens (an equal share when no tokens were generated). The
shares sum to the benchmark's `seconds`. (vLLM 0.32 can time requests, `RequestOutput.metrics`,
only with stat logging on, which `build_engine` leaves off; those per-request latencies would not
sum to the wall time either.)

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

Accuracies are fractions in [0, 1]; benchmarks keep the command-line order. `o1p compare`
reads this file; `sha256` is the hash of the benchmark file's bytes, so runs are compared only
on the same problems.

Resume. Each benchmark's parquet carries its config (model path, sampling settings, prompt,
extraction, the benchmark file's sha256 and column mapping) in its schema metadata. A rerun
skips a benchmark whose parquet exists (it is renamed into place only when complete) with the
same config, refuses one with another config in one line unless `--overwrite` (then it is
evaluated again), and evaluates the rest; summary.json is rewritten over the benchmarks named
on the command line. The model is identified by its path, as in `o1p sample`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.data.problems import PRESETS, Problem, ProblemSource, load_problems
from megatron_o1p.data.prompts import SPEED_PROMPTS, SYSTEM_PROMPT, prompt_ids
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.rollout.vllm_engine import EngineConfig

SUMMARY_NAME = "summary.json"
FORMAT_VERSION = 1
_META_KEY = b"o1p_evaluate"
# Benchmark names become file names and CSV columns; "average"/"avg" name the average.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RESERVED_NAMES = ("average", "avg", "summary")
_MAX_DEFAULT_GRADE_WORKERS = 16
# Columns read back from a completed benchmark (the ids and texts are not needed).
_METRIC_COLUMNS = ["problem_id", "sample_index", "extracted", "correct", "length", "finish_reason"]


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("problem_id", pa.string(), nullable=False),
            pa.field("sample_index", pa.int32(), nullable=False),
            pa.field("problem", pa.string()),
            pa.field("answer", pa.string()),
            pa.field("prompt_length", pa.int32(), nullable=False),
            pa.field("response", pa.string(), nullable=False),
            pa.field("response_ids", pa.list_(pa.int32()), nullable=False),
            pa.field("extracted", pa.string()),
            pa.field("correct", pa.bool_(), nullable=False),
            pa.field("length", pa.int32(), nullable=False),
            pa.field("finish_reason", pa.string()),
            pa.field("time_s", pa.float64(), nullable=False),
        ]
    )


@dataclass
class Benchmark:
    """One benchmark: a name (the output file's stem) and a local problems file."""

    name: str
    """Benchmark name: letters, digits, `_`, `.`, `-`; names `OUT/NAME.parquet`."""
    path: str | Path
    """A JSONL / JSON / parquet problems file (see `data/problems.py`)."""
    preset: str | None = None
    """"math", "gsm8k" or None (plain `problem` and `answer` columns)."""
    problem_field: str | None = None
    """Problem-text column; None = the preset's."""
    answer_field: str | None = None
    """Gold-answer column; None = the preset's rule."""
    id_field: str | None = None
    """Problem id column; None = the row index."""

    def source(self) -> ProblemSource:
        return ProblemSource(
            path=str(self.path),
            preset=self.preset,
            problem_field=self.problem_field,
            answer_field=self.answer_field,
            id_field=self.id_field,
        )


@dataclass
class EvaluateConfig:
    """Settings of the evaluate stage (flags map one-to-one onto fields)."""

    engine: EngineConfig
    """vLLM engine settings (model folder, TP, dtype, KV cache, context limit)."""
    benchmarks: list[Benchmark]
    """The benchmarks, in output order; names must be unique."""
    out: Path
    """Output directory: NAME.parquet per benchmark and summary.json."""
    num_samples: int = 1
    """K responses per problem (1 = the paper's greedy evaluation)."""
    temperature: float = 0.0
    """0 = greedy; K > 1 needs > 0."""
    top_p: float = 1.0
    """Nucleus mass (sampled evaluation)."""
    seed: int = 0
    """Base seed; each problem's request seed derives from it and the problem id."""
    max_tokens: int = 8192
    """Response token limit; longer responses end with finish_reason "length" (incorrect)."""
    speed_prompt: str = "normal"
    """"fast" appends the paper's fast-solving suffix (the Fast-solving Prompt baseline)."""
    system_prompt: str = SYSTEM_PROMPT
    """System turn asking for a \\boxed{} answer; "" for none."""
    extract_mode: str = "last"
    """Which `\\boxed{}` is the answer: "last" (default) or "first" (the official code)."""
    grade_timeout_s: int = 5
    """Whole seconds per math-verify step."""
    grade_workers: int = 0
    """math-verify worker processes; 0 = one per core, at most 16."""
    overwrite: bool = False
    """Re-evaluate a benchmark whose parquet was written with another config."""
    progress: bool = True
    """vLLM's progress bar on stderr, one per benchmark."""

    def __post_init__(self):
        self.out = Path(self.out)
        self.benchmarks = list(self.benchmarks)
        checks = [
            (bool(self.benchmarks), "no benchmark given; pass --benchmark NAME=FILE"),
            (self.num_samples >= 1, f"--num-samples must be >= 1, got {self.num_samples}"),
            (self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}"),
            (
                self.num_samples == 1 or self.temperature > 0,
                f"--num-samples {self.num_samples} with --temperature 0 gives {self.num_samples} "
                "identical greedy responses; pass --temperature > 0 (e.g. 0.6) or --num-samples 1",
            ),
            (0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}"),
            (self.max_tokens >= 1, f"--max-tokens must be >= 1, got {self.max_tokens}"),
            (
                self.speed_prompt in SPEED_PROMPTS,
                f"--speed-prompt must be one of {SPEED_PROMPTS}, got {self.speed_prompt!r}",
            ),
            (
                self.extract_mode in ("last", "first"),
                f"--extract must be 'last' or 'first', got {self.extract_mode!r}",
            ),
            (
                isinstance(self.grade_timeout_s, int) and self.grade_timeout_s >= 1,
                f"--grade-timeout must be whole seconds >= 1, got {self.grade_timeout_s!r}",
            ),
            (self.grade_workers >= 0, f"--grade-workers must be >= 0, got {self.grade_workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        seen = set()
        for b in self.benchmarks:
            if not _NAME_RE.match(b.name) or b.name.lower() in _RESERVED_NAMES:
                raise ConfigError(
                    f"benchmark name {b.name!r} is not usable; use letters, digits, '_', '.', '-' "
                    f"(not {', '.join(_RESERVED_NAMES)}), e.g. --benchmark math500=FILE"
                )
            if b.name in seen:
                raise ConfigError(
                    f"benchmark name {b.name!r} is given twice; give each --benchmark a "
                    "distinct NAME"
                )
            seen.add(b.name)
            if b.preset is not None and b.preset not in PRESETS:
                raise ConfigError(
                    f"benchmark {b.name}: unknown preset {b.preset!r}; use one of {PRESETS}"
                )

    def settings(self) -> dict:
        """The generation and grading settings, as summary.json records them."""
        return {
            "num_samples": self.num_samples,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "max_tokens": self.max_tokens,
            "speed_prompt": self.speed_prompt,
            "system_prompt": self.system_prompt,
            "extract_mode": self.extract_mode,
            "dtype": self.engine.dtype,
            "max_model_len": self.engine.max_model_len,
            "tensor_parallel_size": self.engine.tensor_parallel_size,
        }

    def recorded(self, benchmark: Benchmark, sha256: str) -> dict:
        """What determines one benchmark's output (checked on resume)."""
        return json.loads(
            json.dumps(
                {
                    "stage": "evaluate",
                    "format_version": FORMAT_VERSION,
                    "model": str(Path(self.engine.model).resolve()),
                    "dtype": self.engine.dtype,
                    "sha256": sha256,
                    "preset": benchmark.preset,
                    "problem_field": benchmark.problem_field,
                    "answer_field": benchmark.answer_field,
                    "id_field": benchmark.id_field,
                    "num_samples": self.num_samples,
                    "temperature": self.temperature,
                    "top_p": self.top_p,
                    "seed": self.seed,
                    "max_tokens": self.max_tokens,
                    "speed_prompt": self.speed_prompt,
                    "system_prompt": self.system_prompt,
                    "extract_mode": self.extract_mode,
                }
            )
        )


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


# --------------------------------------------------------------------------- flag parsing


def parse_benchmark(spec: str) -> tuple[str, str]:
    """`NAME=FILE` -> (NAME, FILE).

    Raises:
        ConfigError: no `=`, or an empty name or file.
    """
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(
            f"--benchmark {spec!r} must be NAME=FILE, e.g. --benchmark math500=data/math500.jsonl"
        )
    return name.strip(), path.strip()


def parse_per_benchmark(
    flag: str, values: Sequence[str] | None, names: Sequence[str]
) -> dict[str, str | None]:
    """A per-benchmark option given as `VALUE` (every benchmark) or `NAME=VALUE` (one).

    `NAME=VALUE` wins over a bare `VALUE` for that benchmark.

    Returns:
        benchmark name -> value (None where not given).

    Raises:
        ConfigError: `NAME=` naming no benchmark, or one benchmark (or the default) twice.
    """
    default, per = None, {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep:
            if default is not None:
                raise ConfigError(
                    f"{flag} given twice without a NAME= ({default!r}, {value!r}); "
                    f"use {flag} NAME=VALUE per benchmark"
                )
            default = value
            continue
        if name not in names:
            raise ConfigError(
                f"{flag} {value!r} names no benchmark (benchmarks: {', '.join(names)}); "
                f"use {flag} NAME=VALUE with a --benchmark NAME"
            )
        if name in per:
            raise ConfigError(f"{flag} is given twice for benchmark {name!r}")
        per[name] = rest
    return {n: per.get(n, default) for n in names}


# --------------------------------------------------------------------------- metrics


def _normalize(answer: str) -> str:
    from megatron_o1p.grading.equivalence import normalize_answer

    return normalize_answer(answer)


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
        votes: dict[str, list[dict]] = {}
        for r in group:
            if r["extracted"] is None or r["finish_reason"] == "length":
                continue
            votes.setdefault(_normalize(r["extracted"]), []).append(r)
        if votes:
            # Most votes; ties -> the answer voted first (dicts keep insertion order).
            best = max(votes.values(), key=len)
            majority += bool(best[0]["correct"])
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


_AVERAGED = (
    "accuracy",
    "pass_at_k",
    "majority_accuracy",
    "mean_length",
    "seconds",
    "tokens_per_s",
    "num_problems",
)


def _aggregate(per_benchmark: dict[str, dict]) -> tuple[dict, dict]:
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


# --------------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_json_atomic(path: Path, data: dict) -> Path:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_meta(path: Path) -> dict | None:
    """The o1p_evaluate metadata of a results parquet, or None when absent or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[_META_KEY])
    except (pa.ArrowInvalid, OSError, KeyError, ValueError):
        return None


def _first_difference(recorded: dict, config: dict) -> str:
    for key in sorted(set(recorded) | set(config)):
        if recorded.get(key) != config.get(key):
            return f"{key}: recorded {recorded.get(key)!r}, now {config.get(key)!r}"
    return "no difference"


def _read_rows(path: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=_METRIC_COLUMNS).to_pylist()
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise DataError(
            f"unreadable results ({err}); delete it or rerun with --overwrite", path=str(path)
        ) from err


# --------------------------------------------------------------------------- the stage


@dataclass
class _Prepared:
    benchmark: Benchmark
    file: Path
    sha256: str
    problems: list[Problem]
    config: dict
    out: Path
    resume: dict | None = None
    """The recorded metadata of a complete parquet with this config (skip it)."""


def _prepare(cfg: EvaluateConfig) -> list[_Prepared]:
    """Check every benchmark file and its recorded output before anything is generated."""
    prepared = []
    for b in cfg.benchmarks:
        file = Path(b.path)
        if not file.is_file():
            what = "is a directory" if file.is_dir() else "no such file"
            raise DataError(
                f"benchmark {b.name}: {what}; pass --benchmark {b.name}=FILE with a .jsonl, .json "
                "or .parquet problems file",
                path=str(b.path),
            )
        problems = load_problems(b.source())
        sha = file_sha256(file)
        config = cfg.recorded(b, sha)
        out = cfg.out / f"{b.name}.parquet"
        item = _Prepared(b, file.resolve(), sha, problems, config, out)
        if out.exists():
            meta = _read_meta(out)
            if meta is not None and meta.get("config") == config:
                item.resume = meta
            elif not cfg.overwrite:
                diff = (
                    _first_difference(meta["config"], config)
                    if meta is not None and isinstance(meta.get("config"), dict)
                    else "not written by o1p evaluate"
                )
                raise ConfigError(
                    f"{out} holds results of a different config ({diff}); rerun with the same "
                    "flags to resume, use a new --out, or pass --overwrite to evaluate it again"
                )
        prepared.append(item)
    return prepared


def _progress(cfg: EvaluateConfig, name: str):
    if not cfg.progress:
        return False
    from tqdm import tqdm

    def bar(*iterable, **kwargs):
        if iterable:  # vLLM's "Rendering prompts" pass over the inputs: no bar
            return iterable[0]
        kwargs["desc"] = f"evaluate {name}"
        return tqdm(file=sys.stderr, unit="seq", **kwargs)

    return bar


def _generate(llm, cfg: EvaluateConfig, item: _Prepared, tokenizer, max_len: int):
    """Generate every response of one benchmark in one batch; rows without grades + seconds."""
    from vllm.inputs import TokensPrompt

    from megatron_o1p.rollout.sample import problem_seed
    from megatron_o1p.rollout.vllm_engine import sampling_params

    prompts = []
    for row, p in enumerate(item.problems):
        ids = prompt_ids(
            tokenizer, p.problem, speed=cfg.speed_prompt, system_prompt=cfg.system_prompt
        )
        if len(ids) >= max_len:
            raise DataError(
                f"problem {p.problem_id!r}: the prompt has {len(ids)} tokens, the model context "
                f"is {max_len}; shorten or drop the problem, or raise --max-model-len",
                path=str(item.benchmark.path),
                row=row,
            )
        prompts.append(ids)
    params = [
        sampling_params(
            num_samples=cfg.num_samples,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_tokens,
            seed=problem_seed(cfg.seed, p.problem_id),
            logprobs=False,
        )
        for p in item.problems
    ]
    start = time.monotonic()
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts],
        params,
        use_tqdm=_progress(cfg, item.benchmark.name),
    )
    seconds = time.monotonic() - start
    rows = []
    for problem, ids, out in zip(item.problems, prompts, outputs):
        if len(out.outputs) != cfg.num_samples:
            raise RuntimeError(
                f"vLLM returned {len(out.outputs)} samples for problem {problem.problem_id!r}, "
                f"asked for {cfg.num_samples}"
            )
        for k, sample in enumerate(sorted(out.outputs, key=lambda s: s.index)):
            token_ids = list(sample.token_ids)
            rows.append(
                {
                    "problem_id": problem.problem_id,
                    "sample_index": k,
                    "problem": problem.problem,
                    "answer": problem.answer,
                    "prompt_length": len(ids),
                    "response": sample.text,
                    "response_ids": token_ids,
                    "length": len(token_ids),
                    "finish_reason": sample.finish_reason,
                }
            )
    for r, t in zip(rows, apportion_time([r["length"] for r in rows], seconds)):
        r["time_s"] = t
    return rows, seconds


def _grade(rows: list[dict], cfg: EvaluateConfig, grader) -> float:
    from megatron_o1p.grading.extract import extract_answer

    start = time.monotonic()
    extracted = [extract_answer(r["response"], cfg.extract_mode) for r in rows]
    correct = grader.grade_batch(
        extracted, [r["answer"] for r in rows], [r["finish_reason"] == "length" for r in rows]
    )
    for r, e, c in zip(rows, extracted, correct):
        r["extracted"], r["correct"] = e, bool(c)
    return time.monotonic() - start


def _write_results(item: _Prepared, rows: list[dict], stats: dict) -> None:
    import pyarrow as pa

    from megatron_o1p.data.shards import write_file_atomic

    schema = _schema()
    table = pa.Table.from_pylist(rows, schema=schema)
    meta = {"config": item.config, "stats": stats}
    table = table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    write_file_atomic(table, item.out)


def _benchmark_entry(item: _Prepared, rows: list[dict], stats: dict, resumed: bool) -> dict:
    b = item.benchmark
    m = benchmark_metrics(rows)
    seconds = float(stats["seconds"])
    return {
        "file": str(item.file),
        "sha256": item.sha256,
        "preset": b.preset,
        "problem_field": b.problem_field,
        "answer_field": b.answer_field,
        "id_field": b.id_field,
        "results": item.out.name,
        **m,
        "seconds": seconds,
        "tokens_per_s": m["tokens"] / seconds if seconds > 0 else 0.0,
        "grade_seconds": float(stats["grade_seconds"]),
        "resumed": resumed,
    }


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
    prepared = _prepare(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    pending = [p for p in prepared if p.resume is None]
    entries: dict[str, dict] = {}
    result = EvaluateResult(summary={}, table="")
    if pending:
        from megatron_o1p.data.prompts import load_tokenizer
        from megatron_o1p.grading.equivalence import Grader
        from megatron_o1p.rollout.vllm_engine import build_engine

        tokenizer = load_tokenizer(cfg.engine.model)
        llm = build_engine(cfg.engine)
        max_len = llm.llm_engine.model_config.max_model_len
        workers = cfg.grade_workers or min(os.cpu_count() or 1, _MAX_DEFAULT_GRADE_WORKERS)
        try:
            with Grader(workers, cfg.grade_timeout_s) as grader:
                for item in pending:
                    rows, seconds = _generate(llm, cfg, item, tokenizer, max_len)
                    grade_seconds = _grade(rows, cfg, grader)
                    stats = {"seconds": seconds, "grade_seconds": grade_seconds}
                    _write_results(item, rows, stats)
                    entries[item.benchmark.name] = _benchmark_entry(item, rows, stats, False)
                    result.evaluated.append(item.benchmark.name)
        finally:
            del llm
            gc.collect()
    for item in prepared:
        if item.resume is not None:
            rows = _read_rows(item.out)
            entries[item.benchmark.name] = _benchmark_entry(item, rows, item.resume["stats"], True)
            result.skipped.append(item.benchmark.name)
    per_benchmark = {p.benchmark.name: entries[p.benchmark.name] for p in prepared}
    average, total = _aggregate(per_benchmark)
    summary = {
        "stage": "evaluate",
        "format_version": FORMAT_VERSION,
        "model": str(Path(cfg.engine.model).resolve()),
        "settings": cfg.settings(),
        "benchmarks": per_benchmark,
        "average": average,
        "total": total,
    }
    result.summary_path = _write_json_atomic(cfg.out / SUMMARY_NAME, summary)
    result.summary = summary
    result.table = format_table(summary)
    result.seconds = time.monotonic() - start
    return result
