"""The training rows, memory-mapped: each rank reads only the rows of its own micro-batches.

    dataset = open_dataset("data/train.parquet", "o1-pruner", seq_length=4096)
    len(dataset)              rows
    dataset[i]                [Sequence] (dpo: [chosen, rejected]), as training/data.py cuts them
    dataset.row_lengths[i]    tokens of row i's longest sequence after the cut (the sort key)

`open_dataset` is the data half of `o1p train`'s preflight: the file exists, has the columns
of --loss and rows (read from the parquet footer), then its Arrow IPC copy
(`training/dataset_cache.py`, converted once) is mapped and its stored facts checked
(`training/data_checks.py`), all with one-line errors naming the file, the row and the fix.

Why Arrow IPC and not a megatron-style `.bin` + `.idx`: a training row is several ragged
columns (prompt, response or chosen/rejected ids, per-token reference log-probs) plus scalars,
and each loss reads a different set. An Arrow IPC file stores exactly that, typed, with the
list offsets that give every length without touching a token and with the parquet's schema
metadata (the tokenizer fingerprint) carried along, and pyarrow, already a dependency, maps it
zero-copy. An `.idx` would be our own format for the same offsets, one `.bin` per column.

Mapped pages are page cache: a row's pages are read from disk when its micro-batch is built,
shared by the ranks of a node, and dropped by the kernel under pressure (they count in a
process's RSS as file pages, not as its own memory). At open a rank reads only the per-batch
headers and the list offsets (4 bytes a row and column).

Tested by tests/unit/training/test_token_dataset.py.
"""

from __future__ import annotations

from pathlib import Path

from megatron_o1p.errors import DataError
from megatron_o1p.training.data import (
    REQUIRED,
    TOKEN_COLUMNS,
    Sequence,
    make_sequence,
    missing_columns_error,
)
from megatron_o1p.training.data_checks import row_error, token_id_error
from megatron_o1p.training.dataset_cache import ensure_cache, read_batches


def open_dataset(path: Path, loss: str, seq_length: int) -> TokenDataset:
    """The dataset of `--loss loss` in the parquet file `path`, checked (see the docstring).

    Raises:
        DataError: a missing file or column, no rows, or a row that fails a check.
    """
    path = Path(path)
    _check_footer(path, loss)
    rows_file, facts = ensure_cache(path)
    error = row_error(facts, loss, path)
    if error is not None:
        raise error
    return TokenDataset(rows_file, loss, seq_length, facts=facts, source=path)


def _check_footer(path: Path, loss: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError("not found; build it with `o1p build-dataset`", path=str(path))
    try:
        metadata = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as err:
        raise DataError(
            f"cannot be read as parquet ({err}); rebuild it with `o1p build-dataset`",
            path=str(path),
        ) from err
    names = metadata.schema.to_arrow_schema().names
    error = missing_columns_error(names, loss, path)
    if error is not None:
        raise error
    if metadata.num_rows == 0:
        raise DataError("has no rows; check the build-dataset step", path=str(path))


class TokenDataset:
    """Rows of a mapped rows file (`training/dataset_cache.py`) as training sequences."""

    def __init__(self, rows_file: Path, loss: str, seq_length: int, *, facts=None, source=None):
        import numpy as np
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.rows_file, self.loss, self.seq_length = Path(rows_file), loss, seq_length
        self.facts, self.source = facts, Path(source or rows_file)
        # zero-copy: the table's buffers are slices of the mapping; nothing is read yet
        self._table = ipc.open_file(pa.memory_map(str(self.rows_file))).read_all()
        self._responses = ("chosen_ids", "rejected_ids") if loss == "dpo" else ("response_ids",)
        prompt = self._lengths("prompt_ids")
        full = np.stack([prompt + self._lengths(c) for c in self._responses], axis=1)
        self._full_lengths = full
        """[rows, sequences per row]: prompt + response tokens before the cut."""
        self.row_lengths = np.minimum(full, seq_length + 1).max(axis=1)
        """Per row, the length of its longest sequence after the cut (StepBatches' sort key)."""

    def _lengths(self, column: str):
        import pyarrow.compute as pc

        lengths = pc.list_value_length(self._table.column(column)).fill_null(0)
        return lengths.to_numpy().astype("int64")

    def __len__(self) -> int:
        return self._table.num_rows

    def __getitem__(self, row: int) -> list[Sequence]:
        """Row `row`'s sequence(s): what `testing/eager_data.to_sequences` gives for it."""
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} of {len(self)}")
        prompt = self._ids("prompt_ids", row)
        if self.loss == "dpo":
            return [
                self._sequence(prompt, self._ids(c, row), ref_seq_logprob=self._scalar(ref, row))
                for c, ref in (
                    ("chosen_ids", "ref_chosen_logprob"),
                    ("rejected_ids", "ref_rejected_logprob"),
                )
            ]
        extra = {}
        if self.loss == "o1-pruner":
            extra = {
                "ref_logprobs": self._ids("ref_logprobs", row),
                "advantage": self._scalar("advantage", row),
            }
        return [self._sequence(prompt, self._ids("response_ids", row), **extra)]

    def _ids(self, column: str, row: int):
        """Row `row` of a list column as a numpy view into the mapping (no copy)."""
        values = self._table.column(column)[row].values
        return values.to_numpy(zero_copy_only=False)

    def _scalar(self, column: str, row: int) -> float:
        return self._table.column(column)[row].as_py()

    def _sequence(self, prompt, response, **extra) -> Sequence:
        return make_sequence(prompt, response, self.seq_length, **extra)

    def sequence_lengths(self, rows) -> list[tuple[int, bool]]:
        """(tokens after the cut, whether it was cut) of every sequence of `rows`, in order,
        from the offsets alone (the step report's token count and truncated fraction)."""
        keep = self.seq_length + 1
        return [(int(min(n, keep)), bool(n > keep)) for r in rows for n in self._full_lengths[r]]

    def check_token_ids(self, vocab_size: int) -> None:
        """A token id >= `vocab_size` in the loss's columns is a one-line DataError naming its
        row (the stored maxima decide; the file is read again only to find that row)."""
        columns = [c for c in TOKEN_COLUMNS if c in REQUIRED[self.loss]]
        facts = self.facts
        if facts is None:  # a rows file opened without its stored facts
            facts = {"max_id": dict.fromkeys(columns, vocab_size)}
        error = token_id_error(
            facts, self.loss, vocab_size, lambda: read_batches(self.rows_file), self.source
        )
        if error is not None:
            raise error
