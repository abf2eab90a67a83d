"""On-disk row schemas between stages, as pyarrow schemas plus small dataclasses.

    o1p sample        -> ROLLOUT_SCHEMA  (one row per (problem, sample); parquet shards)
    o1p grade         -> GRADED_SCHEMA   (ROLLOUT_SCHEMA + extracted, correct)
    o1p build-dataset -> DATASET_SCHEMA  (rows for the O1-Pruner loss, eq. 8-11)
                         SFT_SCHEMA      (shortest correct samples, SFT baseline)
                         DPO_SCHEMA      (shortest correct vs longest, DPO baseline)

Token ids are int32 (every vocabulary fits), log-probs float32. Lengths count response tokens
as vLLM returns them: the EOS token that ended a response is one of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pyarrow as pa

_IDS = pa.list_(pa.int32())

ROLLOUT_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("problem", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field("response_text", pa.string(), nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("sampler_logprobs", pa.list_(pa.float32()), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("length", pa.int32(), nullable=False),
    ]
)

GRADED_SCHEMA = pa.schema(
    list(ROLLOUT_SCHEMA) + [pa.field("extracted", pa.string()), pa.field("correct", pa.bool_())]
)

# Per-problem statistics repeated on every row of the problem (eq. 8 and 9).
_STATS = [
    pa.field("num_samples", pa.int32(), nullable=False),
    pa.field("mean_ref_length", pa.float64(), nullable=False),
    pa.field("mean_ref_accuracy", pa.float64(), nullable=False),
]

DATASET_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("advantage", pa.float64(), nullable=False),
        *_STATS,
    ]
)

SFT_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_index", pa.int32(), nullable=False),
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("length", pa.int32(), nullable=False),
    ]
)

DPO_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field("chosen_ids", _IDS, nullable=False),
        pa.field("rejected_ids", _IDS, nullable=False),
        pa.field("chosen_sample_index", pa.int32(), nullable=False),
        pa.field("rejected_sample_index", pa.int32(), nullable=False),
        pa.field("chosen_length", pa.int32(), nullable=False),
        pa.field("rejected_length", pa.int32(), nullable=False),
        pa.field("rejected_correct", pa.bool_(), nullable=False),
    ]
)


@dataclass
class RolloutRow:
    """One sampled response (a row of ROLLOUT_SCHEMA)."""

    problem_id: str
    sample_index: int
    """0..K-1 within the problem."""
    problem: str
    answer: str | None
    """Gold answer carried over from the problems file."""
    prompt_ids: list[int]
    """[P] chat-template prompt token ids."""
    response_text: str
    response_ids: list[int]
    """[L] sampled token ids (includes the EOS that ended it, if any)."""
    sampler_logprobs: list[float]
    """[L] vLLM raw log-probs of the sampled tokens: log_softmax(logits) at temperature 1,
    before temperature, top-p and top-k (`logprobs_mode="raw_logprobs"`)."""
    finish_reason: str | None
    """"stop" (EOS or a stop string) or "length" (hit max tokens: graded incorrect)."""
    length: int
    """L, response length in tokens (== len(response_ids))."""


@dataclass
class ScoredRow:
    """One row of the length-harmonizing dataset (DATASET_SCHEMA)."""

    problem_id: str
    sample_index: int
    prompt_ids: list[int]
    response_ids: list[int]
    length: int
    correct: bool
    reward: float
    """Raw per-sample reward (R_LH for --reward o1-pruner), before clipping."""
    advantage: float
    """The loss weight: reward clipped and normalised over the whole dataset."""
    num_samples: int
    """K, the samples of this problem the stats are taken over."""
    mean_ref_length: float
    """Lbar_ref (eq. 8), tokens."""
    mean_ref_accuracy: float
    """Abar_ref (eq. 9), in [0, 1]."""


def to_table(rows: list, schema: pa.Schema) -> pa.Table:
    """Dataclass rows (or dicts) as a table of `schema` (an empty table for no rows)."""
    names = schema.names
    columns = {name: [] for name in names}
    for row in rows:
        record = row if isinstance(row, dict) else asdict(row)
        for name in names:
            columns[name].append(record[name])
    return pa.Table.from_pydict(columns, schema=schema)


def field_names(cls) -> list[str]:
    """The field names of a row dataclass, in order."""
    return [f.name for f in fields(cls)]
