"""records.py: one response name in code, the two on-disk names mapped in one place."""

import pyarrow as pa

from megatron_o1p.data.records import (
    EVALUATION_METRIC_COLUMNS,
    EVALUATION_SCHEMA,
    RESPONSE,
    ROLLOUT_RESPONSE,
    ROLLOUT_SCHEMA,
    RolloutRow,
    evaluation_record,
    response_column,
    to_table,
)


def _rollout(**kw):
    base = dict(
        problem_id="7",
        sample_index=1,
        problem="1+1?",
        answer="2",
        prompt_ids=[5, 6, 7],
        response_text="\\boxed{2}",
        response_ids=[8, 9],
        sampler_logprobs=None,
        finish_reason="stop",
        length=2,
    )
    return RolloutRow(**{**base, **kw})


def test_the_on_disk_names_of_a_response():
    assert ROLLOUT_RESPONSE in ROLLOUT_SCHEMA.names and RESPONSE not in ROLLOUT_SCHEMA.names
    assert RESPONSE in EVALUATION_SCHEMA.names and ROLLOUT_RESPONSE not in EVALUATION_SCHEMA.names
    assert response_column(["response", "answer"]) == RESPONSE
    assert response_column(["response_text", "answer"]) == ROLLOUT_RESPONSE
    assert response_column(["response", "response_text"]) == RESPONSE
    assert response_column(["text"]) == RESPONSE  # missing: reported under the plain name
    assert set(EVALUATION_METRIC_COLUMNS) <= set(EVALUATION_SCHEMA.names)


def test_evaluation_record_fills_every_column_of_the_schema():
    record = evaluation_record(_rollout(), "2", True, 0.25)
    assert list(record) == EVALUATION_SCHEMA.names
    assert record["response"] == "\\boxed{2}" and record["prompt_length"] == 3
    table = to_table([record], EVALUATION_SCHEMA)
    assert table.schema == EVALUATION_SCHEMA and table.num_rows == 1
    assert table.column("response_ids").type == pa.list_(pa.int32())
