"""The memory-mappable copy of a training parquet file, converted once and kept beside it.

    data/train.parquet                       what `o1p build-dataset` / `o1p ref-logprobs` write
    data/train.parquet.o1p-cache/rows.arrow  the training columns, Arrow IPC file, uncompressed
    data/train.parquet.o1p-cache/checks.json the key of the parquet it came from + RowScan facts

Parquet is compressed and encoded, so reading one row means decoding its whole column chunk;
an uncompressed Arrow IPC file is the in-memory layout itself, so `pyarrow.memory_map` gives
every row as a zero-copy slice and a rank only touches the pages of the rows it trains on.

The cache is valid while `checks.json` records this cache version and the parquet's current
size, modification time (ns) and inode: `o1p ref-logprobs` rewrites the parquet (atomically: a
new file), which changes them, so the next `o1p train` converts again. Conversion streams
record batches (`_BATCH_ROWS` rows) from the parquet into a temporary folder that is renamed
into place (`atomic.atomic_dir`), so a killed conversion never leaves a cache that looks valid;
it runs under an exclusive `flock` of the parquet file, so the ranks of a node convert once
and the others wait, then read it.
Delete the folder to drop the cache. A killed conversion leaves `.train.parquet.o1p-cache.tmp-PID`
beside it; the next conversion removes those whose process no longer runs on this machine.

Tested by tests/unit/training/test_dataset_cache.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
from pathlib import Path

from megatron_o1p import atomic
from megatron_o1p.errors import DataError
from megatron_o1p.testing.faults import fault_point
from megatron_o1p.training.data import REQUIRED
from megatron_o1p.training.data_checks import RowScan

CACHE_SUFFIX = ".o1p-cache"
CACHE_VERSION = 1
ROWS_FILE = "rows.arrow"
CHECKS_FILE = "checks.json"
_BATCH_ROWS = 256
"""Rows per record batch: 256 rows of 16k tokens are 16 MB per int32 column."""
_READ_BUFFER = 1 << 20
"""Parquet read buffer: without one, pyarrow reads a whole column chunk (row group) at once.
pyarrow's `pre_buffer` (on by default) is turned off too: it keeps every row group it read
cached until the file is closed, so converting grew with the file."""
TRAINING_COLUMNS = tuple(dict.fromkeys(c for columns in REQUIRED.values() for c in columns))
"""The columns any loss reads; the cache holds those the parquet has."""


def cache_dir(parquet: Path) -> Path:
    """The cache folder of `parquet`: beside it, named after it."""
    parquet = Path(parquet)
    return parquet.with_name(parquet.name + CACHE_SUFFIX)


def source_key(parquet: Path) -> dict:
    """What the cache must record to be the copy of `parquet` as it is now."""
    stat = Path(parquet).stat()
    return {
        "version": CACHE_VERSION,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,  # an atomic rewrite is a new file, whatever the clock's grain
    }


def ensure_cache(parquet: Path) -> tuple[Path, dict]:
    """(path of the mmap-able rows file, the RowScan facts) for `parquet`, converting it first
    unless a valid cache exists.

    Raises:
        DataError: the parquet cannot be read, or the cache cannot be written beside it.
    """
    parquet = Path(parquet)
    folder = cache_dir(parquet)
    facts = _valid_facts(folder, source_key(parquet))
    if facts is None:
        with _locked(parquet) as exclusive:
            key = source_key(parquet)  # taken before reading: a later rewrite reconverts
            facts = _valid_facts(folder, key)  # another process may have converted it
            if facts is None:
                # what killed conversions left, before writing anew: under the lock no other
                # conversion is running, so every temporary is abandoned
                atomic.remove_abandoned_temporaries(folder, writers_excluded=exclusive)
                facts = _convert(parquet, folder, key)
    return folder / ROWS_FILE, facts


def _valid_facts(folder: Path, key: dict) -> dict | None:
    try:
        record = json.loads((folder / CHECKS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("source") != key or not (folder / ROWS_FILE).is_file():
        return None
    return record["checks"]


@contextlib.contextmanager
def _locked(parquet: Path):
    """An exclusive advisory lock on the parquet file; yields whether it is held (best effort:
    where the file system has no flock, the atomic rename alone keeps concurrent conversions
    correct)."""
    import fcntl

    with open(parquet, "rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        yield locked  # closing the file releases the lock


def _convert(parquet: Path, folder: Path, key: dict) -> dict:
    """Stream the training columns of `parquet` into `folder` (atomically); returns the facts."""
    import pyarrow as pa

    try:
        with atomic.atomic_dir(folder, replace=True) as tmp:
            scan = _write_rows(parquet, tmp / ROWS_FILE)
            record = {"source": key, "rows": scan.rows, "checks": scan.facts}
            (tmp / CHECKS_FILE).write_text(json.dumps(record, indent=1) + "\n")
            fault_point("dataset_cache.written", rows=scan.rows)
    except OSError as err:
        if err.errno not in _WRITE_ERRORS:
            raise _unreadable(parquet, err) from err
        raise DataError(
            f"cannot write its memory-map cache {folder} ({err.strerror}); make room or make "
            "the folder writable, or train on a copy of the dataset in a writable folder",
            path=str(parquet),
        ) from err
    except (pa.ArrowException, EOFError) as err:
        raise _unreadable(parquet, err) from err
    return scan.facts


_WRITE_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def _unreadable(parquet: Path, err: Exception) -> DataError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return DataError(
        f"cannot be read as parquet ({reason}); rebuild it with `o1p build-dataset`",
        path=str(parquet),
    )


def _write_rows(parquet: Path, out: Path) -> RowScan:
    """Copy the training columns batch by batch into an Arrow IPC file; scan them on the way."""
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(parquet, buffer_size=_READ_BUFFER, pre_buffer=False)
    full = source.schema_arrow
    columns = [c for c in TRAINING_COLUMNS if c in full.names]
    schema = pa.schema([full.field(c) for c in columns], metadata=full.metadata)
    scan = RowScan(columns)
    with pa.OSFile(str(out), "wb") as sink, ipc.new_file(sink, schema) as writer:
        for batch in source.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
            writer.write_batch(batch)
            scan.add(batch)
    return scan


def read_batches(rows_file: Path):
    """The record batches of a rows file, read one at a time into memory (not mapped), so a
    pass over the whole file holds one batch, and leaves no mapped pages counted in the RSS."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.OSFile(str(rows_file)) as source:
        reader = ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)
