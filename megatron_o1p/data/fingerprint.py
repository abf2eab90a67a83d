"""Tokenizer fingerprints: which tokenizer a dataset's token ids come from.

`o1p sample` records the fingerprint of the model's tokenizer in its `config.json` and on every
shard; `o1p grade` keeps it (it is metadata of the `prompt_ids` field, which grading copies);
`o1p build-dataset` writes it into the schema metadata of the datasets it builds; `o1p train`
and `o1p ref-logprobs` compare it with the tokenizer in the checkpoint's `hf/` folder and refuse
a dataset tokenized by another tokenizer in one line, before any compute.

The fingerprint is the sha256 of what the tokenizer *does*, not of its files: the vocabulary
(every token and its id, added tokens included), the special tokens and their roles, and the
chat template, as loaded by transformers. The same tokenizer saved as `tokenizer.json`, as
`vocab.json` + `merges.txt`, or with other JSON formatting gives the same fingerprint.

Tested by tests/unit/rollout/test_sample.py and tests/e2e/test_tokenizer_fingerprint.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: Key of the fingerprint in parquet schema / field metadata and in `config.json`.
FINGERPRINT_KEY = "o1p.tokenizer_sha256"
_ROLES = ("bos_token", "eos_token", "unk_token", "pad_token")


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 (hex) of a loaded HF tokenizer's vocabulary, special tokens and chat template."""
    vocab = sorted((int(i), str(t)) for t, i in tokenizer.get_vocab().items())
    special = sorted(
        (str(t), int(tokenizer.convert_tokens_to_ids(t))) for t in tokenizer.all_special_tokens
    )
    roles = {role: _token_text(getattr(tokenizer, role, None)) for role in _ROLES}
    payload = {
        "vocab": vocab,
        "special": special,
        "roles": roles,
        "chat_template": getattr(tokenizer, "chat_template", None),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _token_text(token) -> str | None:
    return None if token is None else str(token)


def folder_fingerprint(folder: str | Path) -> str | None:
    """The fingerprint of the tokenizer in an HF folder (or a checkpoint's `hf/`); None when
    the folder holds no tokenizer transformers can load."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        return None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception:  # transformers raises OSError, ValueError, ...
        return None
    return tokenizer_fingerprint(tokenizer)


def tag_table(table, fingerprint: str | None):
    """`table` with the fingerprint in its schema metadata and in the `prompt_ids` field's
    metadata (which survives stages that rebuild the schema from the fields, like grading)."""
    if not fingerprint:
        return table
    key, value = FINGERPRINT_KEY.encode(), fingerprint.encode()
    schema = table.schema
    if "prompt_ids" in schema.names:
        index = schema.get_field_index("prompt_ids")
        field = schema.field(index)
        schema = schema.set(index, field.with_metadata({**(field.metadata or {}), key: value}))
    schema = schema.with_metadata({**(schema.metadata or {}), key: value})
    return table.cast(schema)


def schema_fingerprint(schema) -> str | None:
    """The fingerprint recorded on a pyarrow schema (schema metadata, else `prompt_ids`)."""
    key = FINGERPRINT_KEY.encode()
    if schema.metadata and key in schema.metadata:
        return schema.metadata[key].decode()
    if "prompt_ids" in schema.names:
        metadata = schema.field("prompt_ids").metadata
        if metadata and key in metadata:
            return metadata[key].decode()
    return None


def file_fingerprint(path: str | Path) -> str | None:
    """The fingerprint recorded in a parquet file (reads only its footer)."""
    import pyarrow.parquet as pq

    return schema_fingerprint(pq.read_schema(path))


def check_dataset_tokenizer(data: str | Path, checkpoint: str | Path) -> str | None:
    """Refuse a dataset tokenized by another tokenizer than the checkpoint's (`hf/`).

    Returns:
        The warning line printed (stderr, global rank 0 only) when the check cannot be made: a
        hand-made dataset with no recorded fingerprint, or a checkpoint without a tokenizer.

    Raises:
        DataError: the fingerprints differ (one line naming the dataset and the fix).
    """
    from megatron_o1p.errors import DataError

    recorded = file_fingerprint(data)
    if recorded is None:
        return _warn0(
            f"warning: {data} records no tokenizer fingerprint (hand-made?); its "
            f"token ids are not checked against {checkpoint}/hf"
        )
    actual = folder_fingerprint(Path(checkpoint) / "hf")
    if actual is None:
        return _warn0(f"warning: {checkpoint}/hf holds no tokenizer; {data} not checked")
    if actual != recorded:
        raise DataError(
            f"tokenized with another tokenizer (fingerprint {recorded[:12]}) than the "
            f"checkpoint {checkpoint} (hf/: {actual[:12]}); rebuild the dataset with `o1p "
            "sample --model` of this checkpoint's HF model, or --load the matching checkpoint",
            path=str(data),
        )
    return None


def rollouts_fingerprint(path: str | Path) -> str | None:
    """The fingerprint of a graded shard directory or parquet file (`o1p build-dataset` input).

    None when any shard records none (hand-made input: the dataset is not vouched for).

    Raises:
        DataError: shards recording different tokenizers.
    """
    from megatron_o1p.data.shards import complete_shards
    from megatron_o1p.errors import DataError

    path = Path(path)
    files = list(complete_shards(path).values()) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        return None  # the reader reports the missing input
    found = {f: file_fingerprint(f) for f in files}
    distinct = {v for v in found.values() if v is not None}
    if len(distinct) > 1:
        first = next(f for f, v in found.items() if v is not None)
        other = next(f for f, v in found.items() if v is not None and v != found[first])
        raise DataError(
            f"shards come from different tokenizers ({first.name}: {found[first][:12]}, "
            f"{other.name}: {found[other][:12]}); sample every shard with the same --model",
            path=str(path),
        )
    if None in found.values() or not distinct:
        return None
    return distinct.pop()


def _warn0(line: str) -> str:
    import os
    import sys

    if os.environ.get("RANK", "0") == "0":  # before torch.distributed is initialised
        print(line, file=sys.stderr, flush=True)
    return line
