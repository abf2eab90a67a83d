"""Atomic writes: a failed write leaves the old output and no temporary behind."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from megatron_o1p.atomic import (
    atomic_dir,
    atomic_file,
    is_temporary,
    remove_abandoned_temporaries,
    temporary_name,
    write_json,
    write_parquet,
    write_text,
)


def test_temporary_name_is_a_hidden_sibling_unique_per_process(tmp_path):
    tmp = temporary_name(tmp_path / "part-00001.parquet")
    assert tmp.parent == tmp_path
    assert tmp.name == f".part-00001.parquet.tmp-{os.getpid()}"
    assert is_temporary(tmp)
    assert not is_temporary(tmp_path / "part-00001.parquet")
    assert not list(tmp_path.glob("part-*.parquet"))  # output globs never see it


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = write_text(tmp_path / "summary.json", "old")
    with pytest.raises(RuntimeError), atomic_file(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_write_json_creates_the_folder_and_ends_with_a_newline(tmp_path):
    path = write_json(tmp_path / "a" / "b.json", {"x": 1})
    assert path.read_text() == '{\n  "x": 1\n}\n'
    assert write_json(path, [1], indent=None).read_text() == "[1]"


def test_write_parquet_round_trips(tmp_path):
    table = pa.table({"ids": [[1, 2], [3]]})
    assert pq.read_table(write_parquet(tmp_path / "t.parquet", table)).equals(table)


def test_atomic_dir_refuses_an_existing_folder_unless_replace(tmp_path):
    out = tmp_path / "hf"
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("1")
    with pytest.raises(OSError), atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("2")
    assert (out / "config.json").read_text() == "1"
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "config.json").write_text("3")
    assert (out / "config.json").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_a_failed_folder_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "mcore") as tmp:
        (tmp / "weights").write_bytes(b"x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_abandoned_temporaries_are_removed_and_running_writers_kept(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(finished.stdout)
    target = tmp_path / "rows.o1p-cache"
    abandoned = tmp_path / f".rows.o1p-cache.tmp-{dead}"
    ours = tmp_path / f".rows.o1p-cache.tmp-{os.getpid()}"
    init = tmp_path / ".rows.o1p-cache.tmp-1"  # pid 1 always runs
    other = tmp_path / f".other.tmp-{dead}"
    for folder in (abandoned, ours, init, other):
        folder.mkdir()
    (abandoned / "rows.arrow").write_bytes(b"x")
    assert remove_abandoned_temporaries(target) == [abandoned]
    assert not abandoned.exists() and ours.is_dir() and init.is_dir() and other.is_dir()
    # holding the writers' lock: a running process's temporary is abandoned too (a killed
    # writer drops its lock before its PID goes), never our own
    assert remove_abandoned_temporaries(target, writers_excluded=True) == [init]
    assert ours.is_dir() and other.is_dir()
