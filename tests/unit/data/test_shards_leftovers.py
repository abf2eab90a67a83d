"""data/shards.py and killed writes: a shard's temporary (`atomic.temporary_name`, or the
`part-X.parquet.tmp` of earlier versions) is never listed or read, the writer of that shard
removes it, and `--overwrite` removes every one; other files are left alone."""

import pyarrow as pa

from megatron_o1p.atomic import is_temporary
from megatron_o1p.data.shards import (
    check_config,
    complete_shards,
    read_shards,
    remove_leftovers,
    write_shard,
)


def _killed_write(out, name: str, pid: int):
    """What a writer killed between write and rename leaves: its temporary, half written."""
    path = out / f".{name}.tmp-{pid}"  # atomic.temporary_name in process `pid`
    assert is_temporary(path)
    path.write_bytes(b"PAR1 half a shard")
    return path


def test_a_killed_write_is_ignored_then_removed_by_the_shard_writer(tmp_path):
    out = tmp_path / "out"
    check_config(out, {"a": 1})
    write_shard(out, 0, pa.table({"x": [0]}))
    stale = _killed_write(out, "part-00001.parquet", pid=999999)
    legacy = out / "part-00001.parquet.tmp"
    legacy.write_bytes(b"PAR1 half a shard")
    other = _killed_write(out, "part-00002.parquet", pid=999999)
    assert list(complete_shards(out)) == [0]
    assert read_shards(out).column("x").to_pylist() == [0]

    write_shard(out, 1, pa.table({"x": [1]}))
    assert not stale.exists() and not legacy.exists()
    assert other.exists()  # another shard's write: not this writer's to remove
    assert read_shards(out).column("x").to_pylist() == [0, 1]


def test_overwrite_removes_every_leftover_and_keeps_other_files(tmp_path):
    out = tmp_path / "out"
    check_config(out, {"a": 1})
    write_shard(out, 0, pa.table({"x": [0]}))
    leftovers = [
        _killed_write(out, "part-00003.parquet", pid=4242),
        out / "part-00004.parquet.tmp",
    ]
    leftovers[1].write_bytes(b"")
    (out / "notes.txt").write_text("mine")
    check_config(out, {"a": 2}, overwrite=True)
    assert complete_shards(out) == {}
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert remove_leftovers(tmp_path / "missing") == []
