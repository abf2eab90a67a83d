"""The grade stage: extract each response's final answer and check it against the gold answer.

    o1p grade rollouts.jsonl graded.jsonl [--extract last|first] [--timeout 5] [--workers N]
    python -m megatron_o1p grade rollouts.parquet graded.parquet

In-process, the one grading path (`o1p evaluate` grades its benchmarks with it):

    from megatron_o1p.config.grading import GradingConfig
    cfg = GradingConfig(extract_mode="last")
    with cfg.build() as grader:
        extracted, correct = grade_responses(responses, answers, finish_reasons, cfg, grader)

Reads JSONL or parquet rows with `response` and `answer` (and optionally `finish_reason`), and
writes the same rows, in order, with two more columns: `extracted` (the answer string, or null)
and `correct` (bool). Rows are streamed in chunks, so files larger than memory work. The output
is written under a temporary name and renamed when complete: an interrupted run leaves no
partial file.

Directory mode (`o1p grade rollouts/ graded/`): IN is an `o1p sample` output directory; every
complete `part-*.parquet` shard is graded into OUT under the same name (written under a
temporary name, then renamed), with one worker pool for all shards. Shards already graded in
OUT are skipped, so a killed grade resumes. Rollout shards name the response `response_text`;
a file without a `response` column is graded from `response_text`
(`data/records.response_column`).

Differs from the official O1-Pruner code on purpose:
- the LAST `\\boxed{}` after `</think>` is graded, not the first in the whole response
  (`--extract first` is the official extractor; `grading/extract.py` lists its three small
  differences);
- equivalence is math-verify 0.9.0 after the string rules of `grading/forms.py` (a bare `pi`,
  base subscripts), not the Hendrycks/PRM800K sympy normaliser;
- outputs cut off at the token limit (`finish_reason == "length"`) are incorrect: math-verify
  would otherwise accept a number from the middle of unfinished reasoning.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from megatron_o1p.atomic import atomic_file
from megatron_o1p.config.flags import Flags, require
from megatron_o1p.config.grading import GradingConfig
from megatron_o1p.data.jsonl import jsonl_records
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.grading.equivalence import Grader
from megatron_o1p.grading.extract import extract_answer

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_PARQUET_SUFFIXES = (".parquet",)
_OUTPUT_COLUMNS = ("extracted", "correct")
# Stands for an absent column (None is a present null value).
_MISSING = object()


@dataclass
class GradeConfig(Flags):
    """Settings of the grade stage (flags map one-to-one onto fields)."""

    grading: GradingConfig = field(default_factory=GradingConfig)
    """Extraction mode, math-verify timeout, workers and memory limit (the flags)."""
    chunk_rows: int = 1024
    """Rows read, graded and written at a time (bounds memory for large files; no flag)."""
    progress: bool = True
    """Show a tqdm bar on stderr when it is a terminal (no flag)."""

    def __post_init__(self):
        require(self.chunk_rows >= 1, f"chunk_rows must be >= 1, got {self.chunk_rows}")


@dataclass
class GradeSummary:
    """Counts over one graded file."""

    rows: int = 0
    correct: int = 0
    extracted: int = 0
    truncated: int = 0
    timeouts: int = 0
    """Answers graded incorrect because math-verify ran past the wall-clock guard."""
    crashes: int = 0
    """Answers graded incorrect because they crashed a worker."""
    seconds: float = 0.0
    out_path: Path | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    @property
    def extraction_rate(self) -> float:
        return self.extracted / self.rows if self.rows else 0.0


def grade_file(in_path: str | Path, out_path: str | Path, cfg: GradeConfig) -> GradeSummary:
    """Grade every row of `in_path` and write the rows plus `extracted`, `correct` to `out_path`.

    Args:
        in_path: JSONL (`.jsonl`, `.json`, `.ndjson`) or parquet (`.parquet`) rollouts.
        out_path: where to write the graded rows, in the same format as `in_path`.
        cfg: stage settings.

    Returns:
        Counts and timing.

    Raises:
        DataError: a missing or unreadable file, or a row without `response` or `answer`
            (names the file and row).
        ConfigError: an output format different from the input's.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.is_dir():
        return grade_dir(in_path, out_path, cfg)
    fmt = _format_of(in_path)
    if _format_of(out_path) != fmt:
        raise ConfigError(
            f"output {out_path} must have the same format as the input {in_path} ({fmt}); "
            f"give OUT a {' or '.join(_JSONL_SUFFIXES if fmt == 'jsonl' else _PARQUET_SUFFIXES)} "
            "suffix"
        )
    if not in_path.is_file():
        raise DataError(
            "no such file; check the path (rollouts come from `o1p sample`)", path=in_path
        )
    summary = GradeSummary(out_path=out_path)
    start = time.monotonic()
    with atomic_file(out_path) as tmp, cfg.grading.build() as grader:
        if fmt == "jsonl":
            _grade_jsonl(in_path, tmp, cfg, grader, summary)
        else:
            _grade_parquet(in_path, tmp, cfg, grader, summary)
        summary.timeouts, summary.crashes = grader.timeouts, grader.crashes
    summary.seconds = time.monotonic() - start
    return summary


def grade_dir(in_dir: str | Path, out_dir: str | Path, cfg: GradeConfig) -> GradeSummary:
    """Grade every complete `part-*.parquet` shard of `in_dir` into `out_dir`, same names.

    Shards already present in `out_dir` are skipped (resume); each new one is written under a
    temporary name and renamed when complete (a killed run's temporaries are removed).

    Args:
        in_dir: an `o1p sample` output directory.
        out_dir: the graded directory (created if needed; must differ from `in_dir`).
        cfg: stage settings.

    Returns:
        Counts over the shards graded by this call.

    Raises:
        DataError: no complete shard in `in_dir`, or a bad row.
        ConfigError: `out_dir` is `in_dir` or a file.
    """
    from megatron_o1p.data.shards import complete_shards, remove_leftovers

    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"IN {in_dir} is a directory, so OUT {out_dir} must be one too")
    if out_dir.resolve() == in_dir.resolve():
        raise ConfigError(f"OUT must differ from IN ({in_dir}); grade into a new directory")
    shards = complete_shards(in_dir)
    if not shards:
        raise DataError(
            "no complete part-*.parquet shards; run `o1p sample --out` into it first",
            path=str(in_dir),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = GradeSummary(out_path=out_dir)
    start = time.monotonic()
    with cfg.grading.build() as grader:
        for path in shards.values():
            final = out_dir / path.name
            if final.is_file():
                continue
            remove_leftovers(out_dir, final.name)  # what a killed grade of this shard left
            with atomic_file(final) as tmp:
                _grade_parquet(path, tmp, cfg, grader, summary)
        summary.timeouts, summary.crashes = grader.timeouts, grader.crashes
    summary.seconds = time.monotonic() - start
    return summary


# --------------------------------------------------------------------------- shared steps


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    raise DataError(
        f"unknown file format {suffix!r}; use JSONL ({', '.join(_JSONL_SUFFIXES)}) or "
        f"parquet ({', '.join(_PARQUET_SUFFIXES)})",
        path=path,
    )


def _progress(cfg: GradeConfig, total: int | None):
    from tqdm import tqdm

    disable = not (cfg.progress and sys.stderr.isatty())
    return tqdm(total=total, desc="grade", unit="row", file=sys.stderr, disable=disable)


def _response_of(record: dict):
    from megatron_o1p.data.records import response_column

    return record.get(response_column(record), _MISSING)


def _check_row(path: Path, row: int, response, answer) -> tuple[str, str]:
    """The row's response and answer as strings, or a DataError naming the fix."""
    if response is _MISSING:
        raise DataError(
            "no `response` column; grade reads rows with `response` (the model output) and "
            "`answer` (the gold answer): rename the column or rerun `o1p sample`",
            path=path,
            row=row,
        )
    if answer is _MISSING:
        raise DataError(
            "no `answer` column; add the gold answer of each problem as `answer` "
            "(carried over from the problems file by `o1p sample`)",
            path=path,
            row=row,
        )
    if not isinstance(response, str):
        raise DataError(
            f"`response` must be a string, got {type(response).__name__}; fix or drop this row",
            path=path,
            row=row,
        )
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise DataError(
            f"`answer` must be a string or a number, got {type(answer).__name__}; "
            "fix or drop this row",
            path=path,
            row=row,
        )
    return response, str(answer)


def grade_responses(
    responses: Sequence[str],
    answers: Sequence[str],
    finish_reasons: Sequence[str | None],
    cfg: GradingConfig,
    grader: Grader,
) -> tuple[list[str | None], list[bool]]:
    """Extract each response's final answer and check it against the gold answer.

    The one grading rule of `o1p grade` and `o1p evaluate`: the answer is the `--extract`
    box (`grading/extract.py`); a response cut off at the token limit (finish reason
    "length") is incorrect whatever it holds; the rest are compared by math-verify in
    `grader`'s sandboxed pool.

    Args:
        responses: [N] model outputs.
        answers: [N] gold answers.
        finish_reasons: [N] vLLM finish reasons ("stop", "length") or None (unknown).
        cfg: the extraction mode (the pool's settings are already in `grader`).
        grader: an open `cfg.build()` pool.

    Returns:
        (extracted, correct): [N] answer strings (None: no answer found) and [N] bools.
    """
    extracted = [extract_answer(r, cfg.extract_mode) for r in responses]
    truncated = [reason == "length" for reason in finish_reasons]
    return extracted, grader.grade_batch(extracted, answers, truncated)


def _grade_chunk(
    responses: list[str],
    answers: list[str],
    finish_reasons: list,
    cfg: GradeConfig,
    grader: Grader,
    summary: GradeSummary,
) -> tuple[list[str | None], list[bool]]:
    extracted, correct = grade_responses(responses, answers, finish_reasons, cfg.grading, grader)
    summary.rows += len(responses)
    summary.correct += sum(correct)
    summary.extracted += sum(e is not None for e in extracted)
    summary.truncated += sum(reason == "length" for reason in finish_reasons)
    return extracted, correct


# --------------------------------------------------------------------------- JSONL


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row index, row) for each non-blank line; row indices count data rows from 0."""
    for row, line_no, record in jsonl_records(path):
        if not isinstance(record, dict):
            raise DataError(
                f"line {line_no} is a JSON {type(record).__name__}, not an object with "
                "`response` and `answer`",
                path=path,
                row=row,
            )
        yield row, record


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
    return count


def _grade_jsonl(
    in_path: Path, tmp: Path, cfg: GradeConfig, grader: Grader, summary: GradeSummary
) -> None:
    with tmp.open("w", encoding="utf-8") as out, _progress(cfg, _count_lines(in_path)) as bar:
        chunk: list[dict] = []

        def flush() -> None:
            checked = [
                _check_row(in_path, i, _response_of(r), r.get("answer", _MISSING)) for i, r in chunk
            ]
            extracted, correct = _grade_chunk(
                [c[0] for c in checked],
                [c[1] for c in checked],
                [r.get("finish_reason") for _, r in chunk],
                cfg,
                grader,
                summary,
            )
            for (_, record), answer, ok in zip(chunk, extracted, correct):
                record["extracted"], record["correct"] = answer, ok
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.update(len(chunk))
            chunk.clear()

        for row, record in _jsonl_rows(in_path):
            chunk.append((row, record))
            if len(chunk) >= cfg.chunk_rows:
                flush()
        if chunk:
            flush()


# --------------------------------------------------------------------------- parquet


def _grade_parquet(
    in_path: Path, tmp: Path, cfg: GradeConfig, grader: Grader, summary: GradeSummary
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from megatron_o1p.data.records import response_column as response_column_of

    try:
        source = pq.ParquetFile(in_path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"not a readable parquet file ({err})", path=in_path) from err
    names = source.schema_arrow.names
    response_column = response_column_of(names)
    if response_column not in names or "answer" not in names:
        present = {c: "" if c in names else _MISSING for c in (response_column, "answer")}
        _check_row(in_path, 0, present[response_column], present["answer"])
    kept = [n for n in names if n not in _OUTPUT_COLUMNS]
    schema = pa.schema(
        [source.schema_arrow.field(n) for n in kept]
        + [pa.field("extracted", pa.string()), pa.field("correct", pa.bool_())]
    )
    row = 0
    with pq.ParquetWriter(tmp, schema) as writer, _progress(cfg, source.metadata.num_rows) as bar:
        for batch in source.iter_batches(batch_size=cfg.chunk_rows, columns=kept):
            responses = batch.column(response_column).to_pylist()
            answers = batch.column("answer").to_pylist()
            reasons = (
                batch.column("finish_reason").to_pylist()
                if "finish_reason" in kept
                else [None] * batch.num_rows
            )
            checked = [
                _check_row(in_path, row + i, r, a)
                for i, (r, a) in enumerate(zip(responses, answers))
            ]
            extracted, correct = _grade_chunk(
                [c[0] for c in checked], [c[1] for c in checked], reasons, cfg, grader, summary
            )
            arrays = [batch.column(n) for n in kept]
            arrays += [pa.array(extracted, pa.string()), pa.array(correct, pa.bool_())]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            row += batch.num_rows
            bar.update(batch.num_rows)
