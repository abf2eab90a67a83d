"""One benchmark's results file of `o1p evaluate`, OUT/NAME.parquet, and its resume check.

The rows are `records.EVALUATION_SCHEMA`; the schema metadata key `o1p_evaluate` holds
`{"config": ..., "stats": {"seconds", "grade_seconds"}}`, the config being everything that
determines the rows (`EvaluateConfig.recorded`). The file is written under a temporary name and
renamed when complete (`atomic.py`), so an existing file is a finished benchmark: a rerun with
the same config reuses it, one with another config is refused unless `--overwrite`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from megatron_o1p.atomic import write_parquet
from megatron_o1p.data.shards import first_difference
from megatron_o1p.errors import ConfigError, DataError

META_KEY = b"o1p_evaluate"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_results(path: Path, rows: list[dict], config: dict, stats: dict) -> Path:
    """Write one benchmark's rows with its config and timing in the schema metadata."""
    from megatron_o1p.data.records import EVALUATION_SCHEMA, to_table

    meta = json.dumps({"config": config, "stats": stats}).encode()
    table = to_table(rows, EVALUATION_SCHEMA).replace_schema_metadata({META_KEY: meta})
    return write_parquet(path, table)


def recorded_results(path: Path, config: dict, *, overwrite: bool) -> dict | None:
    """The metadata of complete results at `path` written with `config`, or None to evaluate.

    Raises:
        ConfigError: `path` holds results of another config (or no o1p evaluate metadata)
            and `overwrite` is False.
    """
    if not path.exists():
        return None
    meta = _read_meta(path)
    if meta is not None and meta.get("config") == config:
        return meta
    if overwrite:
        return None
    diff = (
        first_difference(meta["config"], config)
        if meta is not None and isinstance(meta.get("config"), dict)
        else "not written by o1p evaluate"
    )
    raise ConfigError(
        f"{path} holds results of a different config ({diff}); rerun with the same flags to "
        "resume, use a new --out, or pass --overwrite to evaluate it again"
    )


def read_metric_rows(path: Path) -> list[dict]:
    """The `records.EVALUATION_METRIC_COLUMNS` of complete results, as row dicts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from megatron_o1p.data.records import EVALUATION_METRIC_COLUMNS

    try:
        return pq.read_table(path, columns=EVALUATION_METRIC_COLUMNS).to_pylist()
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise DataError(
            f"unreadable results ({err}); delete it or rerun with --overwrite", path=str(path)
        ) from err


def _read_meta(path: Path) -> dict | None:
    """The o1p_evaluate metadata of a results parquet, or None when absent or unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_KEY])
    except (pa.ArrowInvalid, OSError, KeyError, ValueError):
        return None
