"""build-dataset on hand-made graded rows: eq. 8-10 stats and rewards, row choice, clip and
z-score, SFT and DPO rows, and every edge case the module docstring defines."""

import pyarrow.parquet as pq
import pytest

from megatron_o1p.data.build_dataset import (
    BuildDatasetConfig,
    GradedSample,
    build_dataset,
    dpo_pairs,
    read_graded,
    score,
    sft_rows,
)
from megatron_o1p.data.records import GRADED_SCHEMA, to_table
from megatron_o1p.data.shards import write_shard
from megatron_o1p.errors import ConfigError, DataError


def _samples(pid, lengths, correct):
    return [
        GradedSample(pid, k, [1, 2], list(range(n)), n, bool(c))
        for k, (n, c) in enumerate(zip(lengths, correct))
    ]


def _by_index(rows):
    return {r.sample_index: r for r in rows}


def test_rewards_and_stats_match_hand_computed_eq_8_to_10():
    # Lbar = (10 + 20 + 30 + 40) / 4 = 25, Abar = 2/4 = 0.5, lambda = 2.
    samples = _samples("p", [10, 20, 30, 40], [1, 0, 1, 0])
    cfg = BuildDatasetConfig(rows_per_problem=0, normalize="none", reward_clip=None)
    rows = _by_index(score(samples, cfg))
    expected = {
        0: 25 / 10 - 1 + 2 * (1 - 0.5),  # 2.5
        1: 25 / 20 - 1 + 2 * (0 - 0.5),  # -0.75
        2: 25 / 30 - 1 + 2 * (1 - 0.5),
        3: 25 / 40 - 1 + 2 * (0 - 0.5),
    }
    for k, value in expected.items():
        assert rows[k].reward == pytest.approx(value)
        assert rows[k].advantage == pytest.approx(value)  # no clip, no normalisation
        assert (rows[k].mean_ref_length, rows[k].mean_ref_accuracy) == (25.0, 0.5)
        assert rows[k].num_samples == 4


def test_clip_then_zscore_over_the_whole_dataset():
    samples = _samples("a", [1, 100], [1, 0]) + _samples("b", [50, 50], [1, 1])
    rows = score(samples, BuildDatasetConfig(rows_per_problem=0))
    raw = [r.reward for r in rows]
    assert raw[0] == pytest.approx(50.5 - 1 + 1)  # 50.5, clipped to 4
    clipped = [min(max(r, -2.0), 4.0) for r in raw]
    mean = sum(clipped) / 4
    std = (sum((c - mean) ** 2 for c in clipped) / 4) ** 0.5
    assert [r.advantage for r in rows] == pytest.approx([(c - mean) / std for c in clipped])


def test_rows_per_problem_is_seeded_per_problem_and_independent_of_order():
    a, b = _samples("a", [5, 6, 7, 8, 9], [1] * 5), _samples("b", [5, 6, 7, 8, 9], [0] * 5)
    cfg = BuildDatasetConfig(rows_per_problem=2, seed=3)
    first = score(a + b, cfg)
    second = score(b + a, cfg)
    assert len(first) == 4 and {r.problem_id for r in first} == {"a", "b"}
    key = lambda rows: sorted((r.problem_id, r.sample_index) for r in rows)  # noqa: E731
    assert key(first) == key(second)
    choices = {
        tuple(key(score(a + b, BuildDatasetConfig(rows_per_problem=2, seed=s)))) for s in range(8)
    }
    assert len(choices) > 1  # the seed matters
    # Stats use all K even when only 2 rows are kept.
    assert {r.mean_ref_length for r in first} == {7.0}


def test_edge_cases_zero_length_k1_identical_lengths_no_correct():
    samples = (
        _samples("zero", [0, 10], [0, 1])
        + _samples("k1", [7], [1])
        + _samples("same", [5, 5, 5], [1, 0, 1])
        + _samples("none", [3, 9], [0, 0])
    )
    cfg = BuildDatasetConfig(rows_per_problem=0, normalize="none", reward_clip=None)
    rows = {(r.problem_id, r.sample_index): r for r in score(samples, cfg)}
    # zero length: Lbar counts 0 (mean 5), R_LH treats L=0 as 1.
    assert rows["zero", 0].mean_ref_length == 5.0
    assert rows["zero", 0].reward == pytest.approx(5 / 1 - 1 + 2 * (0 - 0.5))
    assert rows["k1", 0].reward == 0.0
    assert rows["same", 1].reward == pytest.approx(2 * (0 - 2 / 3))
    assert rows["none", 0].reward == pytest.approx(6 / 3 - 1)
    sft = {(r["problem_id"], r["sample_index"]) for r in sft_rows(samples)}
    assert sft == {("zero", 1), ("k1", 0), ("same", 0), ("same", 2)}
    # zero: the only correct sample is also the longest; k1: one sample; same: none longer;
    # none: nothing correct. So no problem here gives a DPO pair.
    assert dpo_pairs(samples) == []


def test_sft_two_shortest_correct_and_dpo_shortest_correct_vs_longest():
    samples = _samples("p", [30, 12, 50, 12, 20, 80], [1, 1, 0, 1, 1, 0])
    assert [r["sample_index"] for r in sft_rows(samples)] == [1, 3]  # ties by index
    (pair,) = dpo_pairs(samples)
    assert (pair["chosen_sample_index"], pair["rejected_sample_index"]) == (1, 5)
    assert (pair["chosen_length"], pair["rejected_length"], pair["rejected_correct"]) == (
        12,
        80,
        False,
    )
    assert pair["chosen_ids"] == list(range(12)) and pair["prompt_ids"] == [1, 2]


def test_alternative_rewards_and_their_parameters():
    samples = _samples("p", [10, 30], [1, 0])
    cfg = BuildDatasetConfig(
        reward="l1",
        reward_params={"target_length": 20.0},
        normalize="none",
        reward_clip=None,
        rows_per_problem=0,
    )
    assert [r.reward for r in score(samples, cfg)] == pytest.approx([1 - 0.0003 * 10, -0.003])
    kimi = BuildDatasetConfig(reward="kimi", normalize="none", reward_clip=None, rows_per_problem=0)
    assert [r.reward for r in score(samples, kimi)] == pytest.approx([1.5, -0.5])
    with pytest.raises(ConfigError, match="needs \\['target_length'\\]"):
        BuildDatasetConfig(reward="l1")
    with pytest.raises(ConfigError, match="no parameter 'alpha'"):
        BuildDatasetConfig(reward="kimi", reward_params={"alpha": 1.0})
    with pytest.raises(ConfigError, match="unknown reward"):
        BuildDatasetConfig(reward="grpo")


def _graded_rows(pid, lengths, correct, answer="5"):
    return [
        dict(
            problem_id=pid,
            sample_index=k,
            problem="q",
            answer=answer,
            prompt_ids=[1, 2],
            response_text="x",
            response_ids=list(range(n)),
            sampler_logprobs=[-1.0] * n,
            finish_reason="stop",
            length=n,
            extracted=None if c is None else "5",
            correct=c,
        )
        for k, (n, c) in enumerate(zip(lengths, correct))
    ]


def test_build_writes_dataset_sft_dpo_and_rejects_bad_rows(tmp_path):
    graded = tmp_path / "graded"
    write_shard(
        graded,
        0,
        to_table(_graded_rows("a", [4, 8, 12, 16], [True, False, True, False]), GRADED_SCHEMA),
    )
    write_shard(graded, 1, to_table(_graded_rows("b", [3, 3], [False, False]), GRADED_SCHEMA))
    out = tmp_path / "ds" / "train.parquet"
    summary = build_dataset(graded, out, BuildDatasetConfig(seed=1))
    assert (summary.problems, summary.samples, summary.rows) == (2, 6, 4)
    assert (summary.sft_rows, summary.dpo_pairs) == (2, 1)
    table = pq.read_table(out)
    assert table.num_rows == 4 and "advantage" in table.column_names
    assert abs(sum(table.column("advantage").to_pylist())) < 1e-9
    assert pq.read_table(tmp_path / "ds" / "sft.parquet").num_rows == 2
    assert pq.read_table(tmp_path / "ds" / "dpo.parquet").num_rows == 1
    assert not [p for p in (tmp_path / "ds").iterdir() if "tmp" in p.name]

    # A null `correct` (not graded) and a duplicated sample are one-line DataErrors.
    bad = tmp_path / "bad"
    write_shard(bad, 0, to_table(_graded_rows("a", [4, 8], [True, None]), GRADED_SCHEMA))
    with pytest.raises(DataError, match="row 1: `correct` is null"):
        read_graded(bad)
    dup = tmp_path / "dup"
    write_shard(dup, 0, to_table(_graded_rows("a", [4], [True]), GRADED_SCHEMA))
    write_shard(dup, 1, to_table(_graded_rows("a", [4], [True]), GRADED_SCHEMA))
    with pytest.raises(DataError, match="duplicate sample"):
        read_graded(dup)
    with pytest.raises(ConfigError, match="--out must be"):
        build_dataset(graded, tmp_path / "sft.parquet", BuildDatasetConfig())
