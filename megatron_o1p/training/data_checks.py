"""The dataset preflight of `o1p train`, streamed: record batch by record batch, never the file.

`RowScan` reads the record batches once (as `training/dataset_cache.py` converts the parquet
file) and keeps, per check, only the first row that fails it, plus the largest token id of
each column. These facts are JSON and are stored with the cache, so a later run (and every other
rank) checks its loss against them without reading a token:

    empty        first row whose prompt_ids is empty (or null)
    null         per token column: first row whose list is null
    non_finite   per reward column (advantage, ref_chosen/rejected_logprob): first row whose value
                 is NaN, +-inf or null, and that value
    ref_mismatch first row whose ref_logprobs count differs from its response_ids count
    max_id       per token column: the largest id (only a value >= the vocabulary sends
                 `check_token_ids` back to the file, to find the row)

`row_error` gives the error the eager reader (`testing/eager_data.py`) raised first: the first
failing row, and on that row the first check in its order (empty prompt, non-finite rewards,
ref_logprobs count). The messages are its messages, rows are global indices in the file.

Tested by tests/unit/training/test_data_checks.py.
"""

from __future__ import annotations

from pathlib import Path

from megatron_o1p.errors import DataError
from megatron_o1p.training.data import REQUIRED, TOKEN_COLUMNS

REWARD_COLUMNS = ("advantage", "ref_chosen_logprob", "ref_rejected_logprob")


def _first(mask) -> int | None:
    """Index of the first true value of a boolean arrow array (nulls count as false)."""
    import numpy as np

    found = np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))
    return int(found[0]) if len(found) else None


def _lengths(column):
    import pyarrow.compute as pc

    return pc.list_value_length(column).fill_null(0)


class RowScan:
    """The facts of the module docstring, built from record batches in file order."""

    def __init__(self, column_names):
        names = set(column_names)
        self.token_columns = [c for c in TOKEN_COLUMNS if c in names]
        self.reward_columns = [c for c in REWARD_COLUMNS if c in names]
        self.ref_pair = "ref_logprobs" in names and "response_ids" in names
        self.rows = 0
        self.facts = {
            "empty": None,
            "null": dict.fromkeys(self.token_columns),
            "non_finite": dict.fromkeys(self.reward_columns),
            "ref_mismatch": None,
            "max_id": dict.fromkeys(self.token_columns),
        }

    def add(self, batch) -> None:
        """Fold in the next record batch (its rows follow the ones seen so far)."""
        import pyarrow.compute as pc

        facts, base = self.facts, self.rows
        if "prompt_ids" in batch.schema.names and facts["empty"] is None:
            index = _first(pc.equal(_lengths(batch.column("prompt_ids")), 0))
            facts["empty"] = None if index is None else base + index
        for name in self.token_columns:
            column = batch.column(name)
            if facts["null"][name] is None and column.null_count:
                facts["null"][name] = base + _first(column.is_null())
            top = pc.max(pc.list_flatten(column)).as_py()
            if top is not None and (facts["max_id"][name] is None or top > facts["max_id"][name]):
                facts["max_id"][name] = int(top)
        for name in self.reward_columns:
            if facts["non_finite"][name] is None:
                column = batch.column(name).cast("float64")
                index = _first(pc.invert(pc.is_finite(column).fill_null(False)))
                if index is not None:
                    facts["non_finite"][name] = [base + index, f"{column[index].as_py()}"]
        if self.ref_pair and facts["ref_mismatch"] is None:
            refs = _lengths(batch.column("ref_logprobs"))
            responses = _lengths(batch.column("response_ids"))
            index = _first(pc.not_equal(refs, responses))
            if index is not None:
                facts["ref_mismatch"] = [
                    base + index,
                    refs[index].as_py(),
                    responses[index].as_py(),
                ]
        self.rows += batch.num_rows


def row_error(facts: dict, loss: str, path: Path) -> DataError | None:
    """The first row check `loss` fails (see the module docstring), as its one-line error."""
    path = str(path)
    found = []  # (row, order on the row, error)
    if facts["empty"] is not None:
        error = DataError("prompt_ids is empty; rebuild the dataset", path=path, row=facts["empty"])
        found.append((facts["empty"], 0, error))
    for name in REQUIRED[loss]:
        row = facts["null"].get(name)
        if row is not None:
            found.append(
                (row, 1, DataError(f"{name} is null; rebuild the dataset", path=path, row=row))
            )
    for order, name in enumerate(REWARD_COLUMNS, start=2):
        hit = facts["non_finite"].get(name) if name in REQUIRED[loss] else None
        if hit is not None:
            message = f"{name} is {hit[1]}; rebuild the dataset (rewards must be finite)"
            found.append((hit[0], order, DataError(message, path=path, row=hit[0])))
    if loss == "o1-pruner" and facts["ref_mismatch"] is not None:
        row, refs, responses = facts["ref_mismatch"]
        message = (
            f"ref_logprobs has {refs} values for {responses} response tokens; rerun "
            "`o1p ref-logprobs`"
        )
        found.append((row, 9, DataError(message, path=path, row=row)))
    return min(found, key=lambda hit: hit[:2])[2] if found else None


def token_id_error(facts: dict, loss: str, vocab_size: int, batches, path: Path):
    """The first row of `loss`'s token columns holding an id >= `vocab_size`, as a one-line
    error (None if there is none). `batches` is a callable giving the record batches again, in
    file order: it is read only when the stored maxima show such an id exists."""
    columns = [c for c in TOKEN_COLUMNS if c in REQUIRED[loss]]
    if all((facts["max_id"].get(c) or 0) < vocab_size for c in columns):
        return None
    base = 0
    for batch in batches():
        row = _first_row_over(batch, columns, vocab_size)
        if row is not None:
            top = max(max(batch.column(c)[row].as_py() or [], default=0) for c in columns)
            return DataError(
                f"token id {top} >= the checkpoint's vocab size {vocab_size}: the data was "
                "tokenized with another tokenizer; rebuild it with the model's tokenizer",
                path=str(path),
                row=base + row,
            )
        base += batch.num_rows
    return None


def _first_row_over(batch, columns, vocab_size: int) -> int | None:
    import numpy as np
    import pyarrow.compute as pc

    rows = []
    for name in columns:
        column = batch.column(name)
        values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        over = np.flatnonzero(values >= vocab_size)
        if len(over):
            # the row of the first such value: lists are laid out in row order
            ends = np.cumsum(_lengths(column).to_numpy(zero_copy_only=False))
            rows.append(int(np.searchsorted(ends, over[0], side="right")))
    return min(rows) if rows else None
