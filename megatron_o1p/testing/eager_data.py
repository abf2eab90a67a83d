"""The eager dataset reader `o1p train` used before the memory-mapped one: the whole parquet file
read into Python lists, every row checked in a Python loop, every sequence built up front.

`o1p train` no longer calls it (`training/token_dataset.py` reads lazily). It stays as the
oracle of the lazy path: the same rows must give the same sequences, micro-batches and errors,
and `benchmarks/data_memory.py` measures it as the baseline (a few GB per rank for a dataset of
200M tokens, as Python objects).

Tested by tests/unit/training/test_token_dataset.py and tests/unit/training/test_data_checks.py.
"""

from __future__ import annotations

import math
from pathlib import Path

from megatron_o1p.errors import DataError
from megatron_o1p.training.data import (
    REQUIRED,
    TOKEN_COLUMNS,
    Sequence,
    make_sequence,
    missing_columns_error,
)


def load_rows(path: Path, loss: str) -> list[dict]:
    """Read and validate the dataset; one-line DataError naming the file, row and fix."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError("not found; build it with `o1p build-dataset`", path=str(path))
    table = pq.read_table(path)
    error = missing_columns_error(table.column_names, loss, path)
    if error is not None:
        raise error
    rows = table.select(list(REQUIRED[loss])).to_pylist()
    if not rows:
        raise DataError("has no rows; check the build-dataset step", path=str(path))
    for index, row in enumerate(rows):
        _check_row(row, loss, path, index)
    return rows


def _check_row(row: dict, loss: str, path: Path, index: int) -> None:
    if not row["prompt_ids"]:
        raise DataError("prompt_ids is empty; rebuild the dataset", path=str(path), row=index)
    for key in ("advantage", "ref_chosen_logprob", "ref_rejected_logprob"):
        if key in row and not math.isfinite(row[key]):
            raise DataError(
                f"{key} is {row[key]}; rebuild the dataset (rewards must be finite)",
                path=str(path),
                row=index,
            )
    if loss == "o1-pruner" and len(row["ref_logprobs"]) != len(row["response_ids"]):
        raise DataError(
            f"ref_logprobs has {len(row['ref_logprobs'])} values for "
            f"{len(row['response_ids'])} response tokens; rerun `o1p ref-logprobs`",
            path=str(path),
            row=index,
        )


def check_token_ids(data: Path, rows: list[dict], vocab_size: int) -> None:
    """The first row holding a token id >= `vocab_size` is a one-line DataError."""
    columns = [c for c in TOKEN_COLUMNS if c in rows[0]]
    for index, row in enumerate(rows):
        top = max(max(row[c], default=0) for c in columns)
        if top >= vocab_size:
            raise DataError(
                f"token id {top} >= the checkpoint's vocab size {vocab_size}: the data was "
                "tokenized with another tokenizer; rebuild it with the model's tokenizer",
                path=str(data),
                row=index,
            )


def to_sequences(rows: list[dict], loss: str, seq_length: int) -> list[list[Sequence]]:
    """One list per row: [sequence] for o1-pruner/sft, [chosen, rejected] for dpo."""
    return [_row_sequences(row, loss, seq_length) for row in rows]


def _row_sequences(row: dict, loss: str, seq_length: int) -> list[Sequence]:
    prompt = row["prompt_ids"]
    if loss == "dpo":
        chosen, rejected = row["ref_chosen_logprob"], row["ref_rejected_logprob"]
        return [
            make_sequence(prompt, row["chosen_ids"], seq_length, ref_seq_logprob=chosen),
            make_sequence(prompt, row["rejected_ids"], seq_length, ref_seq_logprob=rejected),
        ]
    extra = {"ref_logprobs": row.get("ref_logprobs"), "advantage": row.get("advantage", 0.0)}
    return [make_sequence(prompt, row["response_ids"], seq_length, **extra)]
