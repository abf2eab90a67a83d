"""On-disk row schemas between stages, as pyarrow schemas plus small dataclasses.

    o1p sample        -> ROLLOUT_SCHEMA     (one row per (problem, sample); parquet shards)
    o1p grade         -> GRADED_SCHEMA      (ROLLOUT_SCHEMA + extracted, correct)
    o1p evaluate      -> EVALUATION_SCHEMA  (one row per (problem, sample) of a benchmark)
    o1p build-dataset -> DATASET_SCHEMA     (rows for the O1-Pruner loss, eq. 8-11)
                         SFT_SCHEMA         (shortest correct samples, SFT baseline)
                         DPO_SCHEMA         (shortest correct vs longest, DPO baseline)

Token ids are int32 (every vocabulary fits), log-probs float32. Lengths count response tokens
as vLLM returns them: the EOS token that ended a response is one of them.

The response column. In code a response is one thing with one name: `RolloutRow.response_text`,
made by `rollout/sample.sample_problems` for both `o1p sample` and `o1p evaluate`, and graded by
`grading/grade.grade_responses` for both `o1p grade` and `o1p evaluate`. On disk the column keeps
the name each file has always had, so that existing outputs stay readable and byte-identical:
rollout and graded shards call it `response_text` (ROLLOUT_RESPONSE), evaluation results and
the hand-made files `o1p grade` reads call it `response` (RESPONSE). This module is the only
place that spells either: `evaluation_record` maps a RolloutRow onto EVALUATION_SCHEMA, and
`response_column` tells `o1p grade` which of the two a file has.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import pyarrow as pa

_IDS = pa.list_(pa.int32())

RESPONSE = "response"
"""The response column of evaluation results and of plain files given to `o1p grade`."""
ROLLOUT_RESPONSE = "response_text"
"""The response column of rollout and graded shards (`RolloutRow.response_text`)."""

# The key of a (problem, sample) row.
_SAMPLE_KEY = [
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("sample_index", pa.int32(), nullable=False),
]

ROLLOUT_SCHEMA = pa.schema(
    [
        *_SAMPLE_KEY,
        pa.field("problem", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field(ROLLOUT_RESPONSE, pa.string(), nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("sampler_logprobs", pa.list_(pa.float32()), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("length", pa.int32(), nullable=False),
    ]
)

GRADED_SCHEMA = pa.schema(
    list(ROLLOUT_SCHEMA) + [pa.field("extracted", pa.string()), pa.field("correct", pa.bool_())]
)

EVALUATION_SCHEMA = pa.schema(
    [
        *_SAMPLE_KEY,
        pa.field("problem", pa.string()),
        pa.field("answer", pa.string()),
        pa.field("prompt_length", pa.int32(), nullable=False),
        pa.field(RESPONSE, pa.string(), nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("extracted", pa.string()),
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("time_s", pa.float64(), nullable=False),
    ]
)
"""`o1p evaluate`'s OUT/NAME.parquet; `time_s` is the response's share of the generation time."""

EVALUATION_METRIC_COLUMNS = [
    "problem_id",
    "sample_index",
    "extracted",
    "correct",
    "length",
    "finish_reason",
]
"""The columns the metrics read back from complete evaluation results (resume)."""

SFT_SCHEMA = pa.schema(
    [
        *_SAMPLE_KEY,
        pa.field("prompt_ids", _IDS, nullable=False),
        pa.field("response_ids", _IDS, nullable=False),
        pa.field("length", pa.int32(), nullable=False),
    ]
)

# Per-problem statistics repeated on every row of the problem (eq. 8 and 9).
_STATS = [
    pa.field("num_samples", pa.int32(), nullable=False),
    pa.field("mean_ref_length", pa.float64(), nullable=False),
    pa.field("mean_ref_accuracy", pa.float64(), nullable=False),
]

DATASET_SCHEMA = pa.schema(
    [
        *SFT_SCHEMA,
        pa.field("correct", pa.bool_(), nullable=False),
        pa.field("reward", pa.float64(), nullable=False),
        pa.field("advantage", pa.float64(), nullable=False),
        *_STATS,
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
    sampler_logprobs: list[float] | None
    """[L] vLLM raw log-probs of the sampled tokens: log_softmax(logits) at temperature 1,
    before temperature, top-p and top-k (`logprobs_mode="raw_logprobs"`); None where they were
    not asked for (`o1p evaluate`, which does not store them)."""
    finish_reason: str | None
    """"stop" (EOS or a stop string) or "length" (hit max tokens: graded incorrect)."""
    length: int
    """L, response length in tokens (== len(response_ids))."""


@dataclass
class GradedSample:
    """One graded sample, as build-dataset reads it from `o1p grade`'s output."""

    problem_id: str
    sample_index: int
    prompt_ids: list[int]
    response_ids: list[int]
    length: int
    correct: bool


@dataclass
class ScoredRow(GradedSample):
    """One row of the length-harmonizing dataset (DATASET_SCHEMA): a graded sample, scored."""

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


def evaluation_record(row: RolloutRow, extracted: str | None, correct: bool, time_s: float) -> dict:
    """One EVALUATION_SCHEMA row: a graded rollout with its share of the generation time."""
    return {
        "problem_id": row.problem_id,
        "sample_index": row.sample_index,
        "problem": row.problem,
        "answer": row.answer,
        "prompt_length": len(row.prompt_ids),
        RESPONSE: row.response_text,
        "response_ids": row.response_ids,
        "extracted": extracted,
        "correct": correct,
        "length": row.length,
        "finish_reason": row.finish_reason,
        "time_s": time_s,
    }


def response_column(names) -> str:
    """The response column of a file with columns `names` (`o1p grade` reads either name).

    Returns:
        RESPONSE, or ROLLOUT_RESPONSE when only that one is present; RESPONSE when neither
        is (the caller reports it missing).
    """
    if RESPONSE in names or ROLLOUT_RESPONSE not in names:
        return RESPONSE
    return ROLLOUT_RESPONSE


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
