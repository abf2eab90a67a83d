"""Problem sets in: JSONL, a JSON list, parquet, or a Hugging Face `datasets` name or folder.

    o1p sample --problems math500.jsonl --preset math ...
    o1p sample --problems openai/gsm8k --dataset-config main --split test --preset gsm8k ...

Every source becomes a list of `Problem(problem_id, problem, answer)`. Columns are picked by a
preset or by explicit field flags (flags win over the preset):

- no preset: problem from `problem`, answer from `answer`;
- `math`: problem from `problem`, answer from `answer` when present and non-empty, else the
  last `\\boxed{}` of `solution` (MATH's format);
- `gsm8k`: problem from `question`, answer the number after `####` in `answer`.

`problem_id` is the `--id-field` column as a string when given, else the row index (0-based,
over data rows), so ids are stable across reruns of the same file. Every problem needs a
non-empty problem text and an answer; a bad row is a `DataError` naming the file, the row and
the fix. Which source a path is: an existing file ending in `.jsonl`/`.ndjson`, `.json` or
`.parquet` is read directly; anything else goes to `datasets.load_dataset` (imported lazily).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.config.choices import PRESETS
from megatron_o1p.config.flags import Flags, flag, require
from megatron_o1p.data.jsonl import jsonl_records
from megatron_o1p.errors import DataError, SetupError
from megatron_o1p.grading.extract import extract_boxed, extract_gsm8k

_PRESET_PROBLEM_FIELD = {None: "problem", "math": "problem", "gsm8k": "question"}

COLUMN_FIELDS = ("preset", "problem_field", "answer_field", "id_field")
"""The fields of ProblemSource that map a file's columns; `o1p evaluate` takes them per
benchmark (`--preset [NAME=]PRESET`, repeatable), `o1p sample` once."""


@dataclass(frozen=True)
class Problem:
    """One problem with its gold answer."""

    problem_id: str
    """Stable id: the id column's value as a string, else the row index."""
    problem: str
    """The problem statement shown to the model."""
    answer: str
    """The gold final answer (what `o1p grade` compares against)."""


@dataclass
class ProblemSource(Flags):
    """Where the problems come from and how their columns map (flags map one-to-one)."""

    path: str = flag(
        help="problems: a JSONL/JSON/parquet file, or a `datasets` hub name or saved folder",
        name="--problems",
    )
    """A JSONL / JSON / parquet file, or a `datasets` hub name or saved folder."""
    preset: str | None = flag(
        None,
        "column preset: math (answer, else the last \\boxed{} of solution) or gsm8k "
        "(question; the number after #### in answer); default: plain problem and answer columns",
        choices=PRESETS,
    )
    """"math", "gsm8k" or None (plain `problem` and `answer` columns)."""
    problem_field: str | None = flag(
        None, "problem-text column (default: the preset's)", metavar="FIELD"
    )
    """Problem-text column; None = the preset's."""
    answer_field: str | None = flag(
        None, "gold-answer column, used verbatim (default: the preset's rule)", metavar="FIELD"
    )
    """Gold-answer column (used verbatim); None = the preset's rule."""
    id_field: str | None = flag(None, "problem id column (default: the row index)", metavar="FIELD")
    """Column holding a stable problem id; None = the row index."""
    split: str = flag("test", "`datasets` split (ignored for files)")
    """`datasets` split (ignored for files)."""
    dataset_config: str | None = flag(
        None, "`datasets` configuration, e.g. main for openai/gsm8k (ignored for files)"
    )
    """`datasets` configuration name, e.g. "main" for openai/gsm8k (ignored for files)."""

    def __post_init__(self):
        require(
            self.preset is None or self.preset in PRESETS,
            f"unknown preset {self.preset!r}; use --preset math or --preset gsm8k, or name "
            "the columns with --problem-field/--answer-field",
        )


def load_problems(source: ProblemSource) -> list[Problem]:
    """Read every problem of `source`, in file order.

    Args:
        source: the path and the column mapping.

    Returns:
        The problems; ids are unique.

    Raises:
        DataError: an unreadable file, a row without a usable problem or answer, or a
            duplicate id (names the file and row).
        SetupError: a `datasets` source while `datasets` is not installed.
    """
    problem_field = source.problem_field or _PRESET_PROBLEM_FIELD[source.preset]
    problems, seen = [], {}
    for row, record in _records(source):
        if not isinstance(record, dict):
            raise DataError(
                f"expected an object with a `{problem_field}` field, got "
                f"{type(record).__name__}; fix or drop the row",
                path=source.path,
                row=row,
            )
        text = record.get(problem_field)
        if not isinstance(text, str) or not text.strip():
            have = ", ".join(sorted(map(str, record))) or "none"
            raise DataError(
                f"no problem text in `{problem_field}` (got {_short(text)}; columns: {have}); "
                "name the column with --problem-field or pick --preset",
                path=source.path,
                row=row,
            )
        answer = _answer(record, source)
        if answer is None:
            raise DataError(
                f"no gold answer ({_answer_rule(source)}); name the column with "
                "--answer-field, pick the right --preset, or drop the row",
                path=source.path,
                row=row,
            )
        pid = str(row)
        if source.id_field is not None:
            value = record.get(source.id_field)
            if value is None or isinstance(value, (dict, list)) or str(value) == "":
                raise DataError(
                    f"id column `{source.id_field}` is missing or not a scalar ({_short(value)}); "
                    "fix the row or drop --id-field to use row indices",
                    path=source.path,
                    row=row,
                )
            pid = str(value)
        if pid in seen:
            raise DataError(
                f"duplicate problem id {pid!r} (first at row {seen[pid]}); ids must be unique",
                path=source.path,
                row=row,
            )
        seen[pid] = row
        problems.append(Problem(pid, text, answer))
    if not problems:
        raise DataError("no problems in the file; check the path and --split", path=source.path)
    return problems


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _answer_rule(source: ProblemSource) -> str:
    if source.answer_field is not None:
        return f"column `{source.answer_field}` is missing or empty"
    if source.preset == "math":
        return "no non-empty `answer` and no \\boxed{} in `solution`"
    if source.preset == "gsm8k":
        return "no `#### N` line in `answer`"
    return "column `answer` is missing or empty"


def _scalar_text(value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _answer(record: dict, source: ProblemSource) -> str | None:
    if source.answer_field is not None:
        return _scalar_text(record.get(source.answer_field))
    if source.preset == "gsm8k":
        value = record.get("answer")
        return extract_gsm8k(value) if isinstance(value, str) else _scalar_text(value)
    answer = _scalar_text(record.get("answer"))
    if answer is None and source.preset == "math":
        solution = record.get("solution")
        if isinstance(solution, str):
            answer = extract_boxed(solution, "last")
    return answer


# --------------------------------------------------------------------------- sources


def _records(source: ProblemSource) -> Iterator[tuple[int, object]]:
    path = Path(source.path)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in (".jsonl", ".ndjson"):
        yield from _jsonl(path)
    elif path.is_file() and suffix == ".json":
        yield from _json(path)
    elif path.is_file() and suffix == ".parquet":
        yield from _parquet(path)
    elif path.is_file():
        raise DataError(
            f"unknown problems format {suffix!r}; use .jsonl, .json, .parquet or a `datasets` name",
            path=source.path,
        )
    else:
        yield from _hf_dataset(source)


def _jsonl(path: Path) -> Iterator[tuple[int, object]]:
    for row, _, record in jsonl_records(path):
        yield row, record


def _json(path: Path) -> Iterator[tuple[int, object]]:
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("["):
        yield from _jsonl(path)  # many `.json` problem files are JSON lines
        return
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"not valid JSON ({err.msg} at line {err.lineno}); fix the file", path=str(path)
        ) from err
    yield from enumerate(records)


def _parquet(path: Path) -> Iterator[tuple[int, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"not a readable parquet file ({err})", path=str(path)) from err
    row = 0
    for batch in source.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            yield row, record
            row += 1


def _hf_dataset(source: ProblemSource) -> Iterator[tuple[int, object]]:
    try:
        import datasets
    except ImportError as err:
        raise SetupError(
            f"{source.path} is not a .jsonl/.json/.parquet file, and loading it as a hub "
            "dataset needs `datasets`: pip install datasets (or pass a local file)"
        ) from err
    try:
        if Path(source.path).is_dir() and (Path(source.path) / "dataset_info.json").is_file():
            data = datasets.load_from_disk(source.path)
            if isinstance(data, datasets.DatasetDict):
                data = data[source.split]
        else:
            data = datasets.load_dataset(source.path, source.dataset_config, split=source.split)
    except Exception as err:  # datasets raises many types; all mean "cannot load this"
        raise DataError(
            f"cannot load as a `datasets` dataset (split {source.split!r}, config "
            f"{source.dataset_config!r}): {type(err).__name__}: {str(err).splitlines()[0]}; "
            "check the name, --split and --dataset-config",
            path=source.path,
        ) from err
    yield from enumerate(data)
