"""Atomic writes: every stage output appears complete or not at all.

A writer gets a temporary path in the destination's own folder (so the final `os.replace` is a
rename on one file system, atomic on POSIX), writes it, and on success the data is fsynced and
renamed into place; on any exception the temporary is removed and the previous file (if any)
is untouched. Temporary names start with a dot and end in `.tmp-<pid>`, so globs for outputs
(`part-*.parquet`) never see them and two processes never share one.

    with atomic_file(out / "summary.json") as tmp:
        tmp.write_text(text)
    with atomic_dir(out / "hf") as tmp:          # a folder: fill it, then it is renamed
        shutil.copytree(source, tmp, dirs_exist_ok=True)
    write_json(path, obj)                          # the common case, in one call
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """The temporary sibling of `path` this process writes before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def is_temporary(path: Path) -> bool:
    """True for a name made by `temporary_name` (a write in progress, or left by a kill)."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


def remove_abandoned_temporaries(path: Path, *, writers_excluded: bool = False) -> list[Path]:
    """Remove the temporaries of `path` (`temporary_name` siblings) whose process no longer runs
    on this machine: what a killed writer left. Returns the removed paths.

    Args:
        writers_excluded: the caller holds the lock every writer of `path` holds, so every
            other process's temporary is abandoned, even one whose process is still exiting
            (a killed process drops its locks before its PID goes away)."""
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f".{path.name}{TMP_MARK}*"):
        pid = candidate.name.rsplit(TMP_MARK, 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if writers_excluded or not _running(int(pid)):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_file(Path(folder) / name)


def _fsync_dir(path: Path) -> None:
    """Persist a rename: fsync the folder that holds the new name (best effort off POSIX)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is fsynced and renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success its files are fsynced and it becomes `path`.

    Args:
        path: the final folder. It must not exist unless `replace`, which removes the old one
            just before the rename (the only moment neither exists).
        replace: allow replacing an existing folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if replace and path.exists():
            shutil.rmtree(path)
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(path.parent)


def write_bytes(path: Path, data: bytes) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: Path, obj, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """`obj` as JSON plus a newline (indent None: one line, no newline)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys)
    return write_text(path, text + "\n" if indent is not None else text)


def write_parquet(path: Path, table, **kwargs) -> Path:
    """A pyarrow table as parquet (`pyarrow.parquet.write_table` keyword arguments)."""
    import pyarrow.parquet as pq

    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, **kwargs)
    return Path(path)
