"""The memory-mapped dataset gives what the eager reader gave: for every loss and cut, row by
row the same sequences (tokens, prompt length, reference log-probs, advantage, sums, the
truncated flag), the same sort lengths and step-report lengths, from the typed schema
build-dataset writes as well as from a hand-made file; and the tokenizer fingerprint travels
into the mapped copy."""

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from megatron_o1p.data.fingerprint import FINGERPRINT_KEY, file_fingerprint, tag_table
from megatron_o1p.testing import eager_data
from megatron_o1p.training.dataset_cache import cache_dir, ensure_cache
from megatron_o1p.training.token_dataset import open_dataset
from tests.helpers.toy_data import write_toy_dataset

LOSSES = ("o1-pruner", "sft", "dpo")
# 5: most prompts (3-7 tokens) are cut too; 12: responses cut; 100: no cut
SEQ_LENGTHS = (5, 12, 100)


def _typed(path):
    """The toy file with the types build-dataset writes: int32 ids, float32 log-probs."""
    table = pq.read_table(path)
    types = {name: pa.list_(pa.int32()) for name in table.column_names if name.endswith("_ids")} | {
        "ref_logprobs": pa.list_(pa.float32())
    }
    schema = pa.schema([pa.field(f.name, types.get(f.name, f.type)) for f in table.schema])
    pq.write_table(tag_table(table.cast(schema), "f" * 64), path)
    return path


@pytest.fixture(scope="module", params=["hand-made", "typed"])
def dataset_file(request, tmp_path_factory):
    path = write_toy_dataset(tmp_path_factory.mktemp("data") / "train.parquet", rows=300)
    return _typed(path) if request.param == "typed" else path


@pytest.mark.parametrize("seq_length", SEQ_LENGTHS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_row_is_the_eager_rows_sequences(dataset_file, loss, seq_length):
    eager = eager_data.to_sequences(eager_data.load_rows(dataset_file, loss), loss, seq_length)
    lazy = open_dataset(dataset_file, loss, seq_length)
    assert len(lazy) == len(eager) == 300
    for row in range(len(eager)):
        assert lazy[row] == eager[row], row
    assert [int(n) for n in lazy.row_lengths] == [max(len(s.tokens) for s in r) for r in eager]
    rows = [7, 0, 299, 7]
    assert lazy.sequence_lengths(rows) == [
        (len(s.tokens), s.truncated) for r in rows for s in eager[r]
    ]
    if seq_length < 100:
        assert any(s.truncated for r in eager for s in r)  # the cut is exercised


def test_values_are_python_numbers_of_the_stored_values(dataset_file):
    seq = open_dataset(dataset_file, "o1-pruner", 100)[3][0]
    assert all(type(t) is int for t in seq.tokens)
    assert all(type(v) is float for v in seq.ref_logprobs) and type(seq.advantage) is float


def test_out_of_range_rows_raise_index_error(dataset_file):
    dataset = open_dataset(dataset_file, "sft", 100)
    with pytest.raises(IndexError):
        dataset[300]
    with pytest.raises(IndexError):
        dataset[-1]


def test_the_mapped_copy_keeps_the_tokenizer_fingerprint(tmp_path):
    path = _typed(write_toy_dataset(tmp_path / "train.parquet", rows=4))
    rows_file, _ = ensure_cache(path)
    assert rows_file.parent == cache_dir(path)
    schema = ipc.open_file(pa.memory_map(str(rows_file))).schema
    assert schema.metadata[FINGERPRINT_KEY.encode()] == b"f" * 64
    assert file_fingerprint(path) == "f" * 64  # the check still reads the parquet footer
    assert "problem_id" not in schema.names  # only the columns training reads
