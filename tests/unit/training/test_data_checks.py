"""The streamed preflight raises what the eager reader raised, in one line with the file, the
global row index (also past the first record batch) and the fix: empty prompts, non-finite
rewards, a ref_logprobs count that is not the response's, token ids beyond the vocabulary,
missing columns, no rows, a missing or unreadable file; a row failing two checks reports the
eager reader's first. Checks a loss does not read do not fire."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from megatron_o1p.errors import DataError
from megatron_o1p.testing import eager_data
from megatron_o1p.training.dataset_cache import _BATCH_ROWS
from megatron_o1p.training.token_dataset import open_dataset
from tests.helpers.toy_data import write_toy_dataset

ROWS = 2 * _BATCH_ROWS + 50
LATE = _BATCH_ROWS + 37  # a row of the second record batch


def _at(row, bad, good):
    return lambda i: bad if i == row else good(i)


def _errors(path, loss, vocab_size=1000):
    """(eager error, streamed error) messages; None where none is raised."""
    found = []
    for read in (_eager, _lazy):
        try:
            read(path, loss, vocab_size)
            found.append(None)
        except DataError as err:
            found.append(str(err))
    return found


def _eager(path, loss, vocab_size):
    eager_data.check_token_ids(path, eager_data.load_rows(path, loss), vocab_size)


def _lazy(path, loss, vocab_size):
    open_dataset(path, loss, 64).check_token_ids(vocab_size)


def _prompt(i):
    return [1, 2, 3]


def _response(i):
    return [4, 5, 6, 7]


CASES = {
    "empty prompt": (dict(prompt_ids=_at(LATE, [], _prompt)), "o1-pruner", "empty"),
    "nan advantage": (dict(advantage=_at(LATE, float("nan"), float)), "o1-pruner", "is nan"),
    "-inf chosen sum": (
        dict(ref_chosen_logprob=_at(LATE, float("-inf"), float)),
        "dpo",
        "ref_chosen_logprob is -inf",
    ),
    "ref count": (
        dict(ref_logprobs=_at(LATE, [-1.0] * 3, lambda i: [-1.0] * 4), response_ids=_response),
        "o1-pruner",
        "ref_logprobs has 3 values for 4 response tokens; rerun `o1p ref-logprobs`",
    ),
    "token id": (dict(response_ids=_at(LATE, [4, 1000], _response)), "sft", "token id 1000 >="),
    "rejected id": (dict(rejected_ids=_at(LATE, [7, 5000], _response)), "dpo", "token id 5000"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_row_is_the_eager_error_with_its_global_row(tmp_path, case):
    override, loss, expected = CASES[case]
    path = write_toy_dataset(tmp_path / "d.parquet", rows=ROWS, **override)
    eager, lazy = _errors(path, loss)
    assert lazy == eager, case
    assert lazy.startswith(f"{path} row {LATE}: ") and expected in lazy and "\n" not in lazy


def test_the_first_failing_row_wins_and_on_a_row_the_eager_order(tmp_path):
    override = dict(
        advantage=_at(LATE, float("inf"), float),
        prompt_ids=lambda i: [] if i in (LATE, LATE + 5) else [1, 2],
        ref_logprobs=_at(LATE - 3, [0.0], lambda i: [0.0] * 4),
        response_ids=_response,
    )
    path = write_toy_dataset(tmp_path / "d.parquet", rows=ROWS, **override)
    eager, lazy = _errors(path, "o1-pruner")
    assert lazy == eager and f"row {LATE - 3}: ref_logprobs has 1 values" in lazy
    override["ref_logprobs"] = lambda i: [0.0] * 4  # now row LATE fails twice: prompt first
    path = write_toy_dataset(tmp_path / "e.parquet", rows=ROWS, **override)
    eager, lazy = _errors(path, "o1-pruner")
    assert lazy == eager and f"row {LATE}: prompt_ids is empty" in lazy


def test_checks_of_columns_a_loss_does_not_read_do_not_fire(tmp_path):
    override = dict(advantage=float("nan"), ref_logprobs=[0.0], chosen_ids=[9999])
    path = write_toy_dataset(tmp_path / "d.parquet", rows=20, **override)
    assert _errors(path, "sft") == [None, None]
    assert "advantage is nan" in _errors(path, "o1-pruner")[1]


def test_an_id_under_the_vocabulary_passes_and_one_at_it_does_not(tmp_path):
    path = write_toy_dataset(tmp_path / "d.parquet", rows=20, vocab=1000)
    assert _errors(path, "o1-pruner", vocab_size=1000) == [None, None]
    eager, lazy = _errors(path, "o1-pruner", vocab_size=500)
    assert lazy == eager and "row 0: token id" in lazy


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: write_toy_dataset(p, rows=0), "has no rows; check the build-dataset step"),
        (
            lambda p: pq.write_table(
                pq.read_table(write_toy_dataset(p)).drop_columns(["advantage"]), p
            ),
            "missing column(s) ['advantage'] for --loss o1-pruner; rebuild it",
        ),
        (
            lambda p: pq.write_table(
                pq.read_table(write_toy_dataset(p)).drop_columns(["ref_logprobs"]), p
            ),
            "run `o1p ref-logprobs` on it first",
        ),
        (lambda p: None, "not found; build it with `o1p build-dataset`"),
    ],
)
def test_file_level_errors_are_the_eager_ones(tmp_path, make, message):
    path = tmp_path / "d.parquet"
    make(path)
    eager, lazy = _errors(path, "o1-pruner")
    assert lazy == eager and message in lazy


def test_a_file_that_is_not_parquet_is_one_line(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError) as err:
        open_dataset(path, "sft", 64)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot be read as parquet") and "\n" not in message


def test_a_null_token_list_is_one_line_naming_its_row(tmp_path):
    table = pq.read_table(write_toy_dataset(tmp_path / "d.parquet", rows=ROWS))
    ids = table.column("response_ids").to_pylist()
    ids[LATE] = None
    index = table.schema.get_field_index("response_ids")
    table = table.set_column(index, "response_ids", pa.array(ids, table.schema.field(index).type))
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path / "d.parquet", "sft", 64)
    assert str(err.value) == f"{tmp_path / 'd.parquet'} row {LATE}: response_ids is null; " + (
        "rebuild the dataset"
    )
