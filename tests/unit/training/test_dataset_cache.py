"""The mmap copy of a training parquet: converted once and then reused; converted again when the
parquet changes (new content, or the same size with a new modification time) or the cache
version does; written atomically (a conversion SIGKILLed before its rename leaves no cache,
and one failing on a corrupt file leaves nothing at all); and converted by one process while
another one waits on the lock, then reads it."""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from megatron_o1p.atomic import is_temporary
from megatron_o1p.errors import DataError
from megatron_o1p.testing.faults import ENV_VAR
from megatron_o1p.training import dataset_cache
from megatron_o1p.training.dataset_cache import CHECKS_FILE, cache_dir, ensure_cache
from megatron_o1p.training.token_dataset import open_dataset
from tests.helpers.run import _env
from tests.helpers.toy_data import write_toy_dataset


def _stamp(path):
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_a_valid_cache_is_reused(tmp_path):
    data = write_toy_dataset(tmp_path / "train.parquet", rows=8)
    rows_file, facts = ensure_cache(data)
    before = _stamp(rows_file)
    again, facts_again = ensure_cache(data)
    assert again == rows_file and _stamp(again) == before and facts_again == facts


def test_a_changed_parquet_is_converted_again(tmp_path):
    data = write_toy_dataset(tmp_path / "train.parquet", rows=8, seed=0)
    first = open_dataset(data, "sft", 100)[0][0].tokens
    write_toy_dataset(data, rows=8, seed=1)  # what `o1p ref-logprobs` does: a new file
    assert open_dataset(data, "sft", 100)[0][0].tokens != first
    # same bytes, a new modification time: converted again (size + mtime is the key)
    rows_file = cache_dir(data) / dataset_cache.ROWS_FILE
    before = _stamp(rows_file)
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    ensure_cache(data)
    assert _stamp(rows_file) != before


def test_another_cache_version_is_converted_again(tmp_path):
    data = write_toy_dataset(tmp_path / "train.parquet", rows=8)
    rows_file, _ = ensure_cache(data)
    checks = cache_dir(data) / CHECKS_FILE
    record = json.loads(checks.read_text())
    record["source"]["version"] = dataset_cache.CACHE_VERSION - 1
    checks.write_text(json.dumps(record))
    before = _stamp(rows_file)
    ensure_cache(data)
    assert _stamp(rows_file) != before


def _convert_in_child(data, *, pause: bool):
    """A process converting `data` (held at the fault point after writing, when `pause`)."""
    env = _env()
    env.pop(ENV_VAR, None)
    if pause:
        env[ENV_VAR] = "dataset_cache.written"
    code = (
        "import sys; from megatron_o1p.training.dataset_cache import ensure_cache; "
        "print('start', flush=True); print('rows', ensure_cache(sys.argv[1])[1]['max_id'])"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE, text=True, env=env
    )


def _wait_for(proc, prefix: str) -> str:
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the child ended (rc {proc.wait()}) before printing {prefix!r}")


def test_a_killed_conversion_leaves_no_cache_and_a_waiting_process_converts(tmp_path):
    data = write_toy_dataset(tmp_path / "train.parquet", rows=8)
    writer = _convert_in_child(data, pause=True)
    try:
        _wait_for(writer, "o1p test hook: paused at dataset_cache.written")
        waiter = _convert_in_child(data, pause=False)
        _wait_for(waiter, "start")
        time.sleep(1.0)
        assert waiter.poll() is None  # blocked on the writer's lock
        leftovers = [p for p in tmp_path.iterdir() if is_temporary(p)]
        assert len(leftovers) == 1 and (leftovers[0] / CHECKS_FILE).is_file()
        assert not cache_dir(data).exists()  # written, not renamed: no cache yet
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert _wait_for(waiter, "rows").startswith("rows {'prompt_ids'")
    assert waiter.wait(timeout=120) == 0
    assert (cache_dir(data) / CHECKS_FILE).is_file()
    assert len(open_dataset(data, "o1-pruner", 64)) == 8
    assert not [p for p in tmp_path.iterdir() if is_temporary(p)]  # the killed one's is gone


def test_a_corrupt_parquet_fails_in_one_line_and_leaves_nothing(tmp_path):
    data = tmp_path / "train.parquet"
    table = pq.read_table(write_toy_dataset(data, rows=40))
    pq.write_table(table, data, row_group_size=10)
    offset = pq.ParquetFile(data).metadata.row_group(2).column(0).data_page_offset
    with open(data, "r+b") as handle:  # the footer still reads; a page in the middle does not
        handle.seek(offset)
        handle.write(b"\xff" * 64)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DataError) as err:
        open_dataset(data, "sft", 64)
    message = str(err.value)
    assert message.startswith(f"{data}: cannot be read as parquet") and "\n" not in message
    assert "rebuild it with `o1p build-dataset`" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before
