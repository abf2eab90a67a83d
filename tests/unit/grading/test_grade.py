"""grading/grade.py in-process: `grade_responses` (the rule evaluate shares) and directory
mode over rollout shards, which name the response `response_text` and leave no temporaries."""

import pyarrow.parquet as pq

from megatron_o1p.config.grading import GradingConfig
from megatron_o1p.data.records import GRADED_SCHEMA, ROLLOUT_SCHEMA, RolloutRow, to_table
from megatron_o1p.data.shards import write_shard
from megatron_o1p.grading.grade import GradeConfig, grade_dir, grade_responses


def test_truncated_responses_are_incorrect_whatever_they_hold():
    cfg = GradingConfig(workers=1)
    with cfg.build() as grader:
        extracted, correct = grade_responses(
            ["\\boxed{5}", "no answer"], ["5", "5"], ["length", "stop"], cfg, grader
        )
    assert extracted == ["5", None] and correct == [False, False]


def _shard(out, index):
    row = RolloutRow(
        problem_id=str(index),
        sample_index=0,
        problem="p",
        answer="5",
        prompt_ids=[1],
        response_text="\\boxed{5}",
        response_ids=[2, 3],
        sampler_logprobs=[-0.1, -0.2],
        finish_reason="length",
        length=2,
    )
    write_shard(out, index, to_table([row], ROLLOUT_SCHEMA))


def test_grade_dir_reads_response_text_and_clears_a_killed_runs_temporaries(tmp_path):
    rollouts, graded = tmp_path / "rollouts", tmp_path / "graded"
    _shard(rollouts, 0)
    _shard(rollouts, 1)
    graded.mkdir()
    stale = graded / ".part-00001.parquet.tmp-999999"
    stale.write_bytes(b"PAR1 half a shard")
    summary = grade_dir(rollouts, graded, GradeConfig(grading=GradingConfig(workers=1)))
    assert summary.rows == 2 and summary.truncated == 2 and summary.extracted == 2
    assert sorted(p.name for p in graded.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    table = pq.read_table(graded / "part-00001.parquet")
    assert table.schema.names == GRADED_SCHEMA.names
    assert table.column("extracted").to_pylist() == ["5"]
