"""Atomic, resumable parquet shards: a shard is visible only when it is complete.

Layout of a stage's output directory:

    OUT/
      config.json                     the stage's resolved config (checked on every rerun)
      part-00000.parquet              complete shards, one per chunk of work
      .part-00003.parquet.tmp-4242    a shard being written by process 4242 (or left by a
                                      killed run): ignored by readers

A shard is written under its temporary name and renamed when complete (`atomic.py`: fsync,
then `os.replace`, atomic on POSIX within one filesystem), so readers and reruns see either
nothing or the whole shard. A rerun lists complete shards and redoes only the missing ones;
before writing a shard it removes what a killed writer of that shard left (only the owner of a
shard writes it, so the leftover is never a live write).

`config.json` records what determines the output. A rerun with a different config is refused
with a one-line `ConfigError` unless `overwrite=True`, which deletes the old shards first.

Tested by tests/unit/data/test_shards_leftovers.py and tests/e2e/test_sample_kill.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from megatron_o1p.atomic import TMP_MARK, is_temporary, write_json, write_parquet
from megatron_o1p.errors import ConfigError, DataError

CONFIG_NAME = "config.json"
_SHARD_RE = re.compile(r"^part-(\d{5,})\.parquet$")
# Before atomic.py, a shard was written to `part-XXXXX.parquet.tmp`; such leftovers are
# removed the same way as the current temporaries.
_LEGACY_TMP = ".tmp"


def shard_name(index: int) -> str:
    """`part-XXXXX.parquet` for shard `index` (zero-padded to 5 digits)."""
    return f"part-{index:05d}.parquet"


def complete_shards(out_dir: str | Path) -> dict[int, Path]:
    """Complete shards of `out_dir` by index (a missing directory has none)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    found = {}
    for path in out_dir.iterdir():
        match = _SHARD_RE.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def _written_name(leftover: Path) -> str | None:
    """The output a killed write was making (`part-00003.parquet`), or None for other files."""
    name = leftover.name
    if is_temporary(leftover):
        return name[1:].rsplit(TMP_MARK, 1)[0]
    if name.endswith(_LEGACY_TMP):
        return name.removesuffix(_LEGACY_TMP)
    return None


def remove_leftovers(out_dir: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries that killed writes of shards left in `out_dir`.

    Args:
        out_dir: the output directory (a missing one has none).
        name: only the leftovers of this shard (`part-00003.parquet`); None = of every shard.

    Returns:
        The paths removed.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    removed = []
    for path in out_dir.iterdir():
        written = _written_name(path)
        if written is None or not _SHARD_RE.match(written) or name not in (None, written):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def write_shard(out_dir: str | Path, index: int, table) -> Path:
    """Write `table` as shard `index` of `out_dir`, atomically (see the module docstring).

    Args:
        out_dir: the output directory (created if needed).
        index: the shard index.
        table: a pyarrow Table.

    Returns:
        The path of the complete shard.
    """
    final = Path(out_dir) / shard_name(index)
    remove_leftovers(out_dir, final.name)
    return write_parquet(final, table)


def write_file_atomic(table, path: str | Path) -> Path:
    """Write one parquet file under a temporary name and rename it into place."""
    return write_parquet(Path(path), table)


def read_shards(out_dir: str | Path, columns: list[str] | None = None):
    """All complete shards of `out_dir` as one table, in shard order.

    Raises:
        DataError: no complete shard, or an unreadable one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    shards = complete_shards(out_dir)
    if not shards:
        raise DataError(
            "no complete part-*.parquet shards; run the stage that writes them first",
            path=str(out_dir),
        )
    tables = []
    for path in shards.values():
        try:
            tables.append(pq.read_table(path, columns=columns))
        except (pa.ArrowInvalid, OSError) as err:
            raise DataError(
                f"unreadable shard ({err}); delete it and rerun its stage", path=str(path)
            ) from err
    return pa.concat_tables(tables, promote_options="default")


def check_config(out_dir: str | Path, config: dict, *, overwrite: bool = False) -> None:
    """Record `config` in `out_dir/config.json`, or check it against the recorded one.

    Args:
        out_dir: the output directory (created if needed).
        config: JSON-serialisable settings that determine the output.
        overwrite: on a mismatch, delete the existing shards and config instead of failing.

    Raises:
        ConfigError: the recorded config differs and `overwrite` is False.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CONFIG_NAME
    config = json.loads(json.dumps(config))  # normalise tuples -> lists etc.
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            recorded = None
        if recorded == config:
            return
        if not overwrite:
            diff = first_difference(recorded, config)
            raise ConfigError(
                f"{out_dir} holds output of a different config ({diff}); rerun with the same "
                "flags to resume, use a new --out, or pass --overwrite to start over"
            )
        for shard in complete_shards(out_dir).values():
            shard.unlink()
        remove_leftovers(out_dir)
    write_json(path, config, indent=2, sort_keys=True)


def first_difference(recorded, config: dict) -> str:
    """The first key (sorted) whose recorded and current settings differ, as a phrase."""
    if not isinstance(recorded, dict):
        return f"unreadable {CONFIG_NAME}"
    for key in sorted(set(recorded) | set(config)):
        if recorded.get(key) != config.get(key):
            return f"{key}: recorded {recorded.get(key)!r}, now {config.get(key)!r}"
    return "no difference"
