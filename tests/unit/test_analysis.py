"""analysis.py on hand-made samples: the interval rule (K = 8, 6, 3, ties), per-interval stats,
the averages over problems (Table 1) with best-interval shares, and the one-line input errors.

Every expected value is worked out by hand in a comment beside it.
"""

import math

import pyarrow as pa
import pytest

from megatron_o1p.analysis import (
    AnalyzeConfig,
    IntervalStats,
    assign_intervals,
    format_table,
    interval_stats,
    read_problems,
    summarize,
)
from megatron_o1p.data.shards import write_shard
from megatron_o1p.errors import ConfigError, DataError


def _as_tuples(stats):
    return [(s.interval, s.n, s.n_correct, s.total_length) for s in stats]


def _close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e), (actual, expected)


# K = 8, M = 4. Sorted by length: 10 20 | 30 40 | 50 60 | 70 80, two per interval.
K8_LENGTHS = [80, 10, 70, 20, 60, 30, 50, 40]
K8_CORRECT = [0, 1, 1, 1, 0, 1, 1, 0]


def test_k8_two_samples_per_interval():
    assert assign_intervals(K8_LENGTHS, 4) == [3, 0, 3, 0, 2, 1, 2, 1]
    stats = interval_stats(K8_LENGTHS, K8_CORRECT, 4)
    # I1 {10 ok, 20 ok}; I2 {30 ok, 40 x}; I3 {50 ok, 60 x}; I4 {70 ok, 80 x}.
    assert _as_tuples(stats) == [(1, 2, 2, 30), (2, 2, 1, 70), (3, 2, 1, 110), (4, 2, 1, 150)]
    _close([s.accuracy for s in stats], [1.0, 0.5, 0.5, 0.5])
    _close([s.mean_length for s in stats], [15.0, 35.0, 55.0, 75.0])


def test_k6_sizes_follow_the_real_valued_bounds():
    # Bounds i * 6 / 4 = 0, 1.5, 3, 4.5, 6: ranks {0, 1} {2} {3, 4} {5} -> sizes 2, 1, 2, 1.
    lengths, correct = [5, 10, 15, 20, 25, 30], [1, 0, 0, 1, 1, 0]
    assert assign_intervals(lengths, 4) == [0, 0, 1, 2, 2, 3]
    stats = interval_stats(lengths, correct, 4)
    assert [s.n for s in stats] == [2, 1, 2, 1]
    _close([s.accuracy for s in stats], [0.5, 0.0, 1.0, 0.0])
    _close([s.mean_length for s in stats], [7.5, 15.0, 22.5, 30.0])


def test_k3_leaves_the_last_interval_empty():
    # Bounds 0, 0.75, 1.5, 2.25, 3: ranks {0} {1} {2} {} -> the longest interval is empty.
    lengths, correct = [9, 3, 6], [1, 0, 1]
    assert assign_intervals(lengths, 4) == [2, 0, 1]
    stats = interval_stats(lengths, correct, 4)
    assert _as_tuples(stats) == [(1, 1, 0, 3), (2, 1, 1, 6), (3, 1, 1, 9), (4, 0, 0, 0)]
    _close([s.accuracy for s in stats], [0.0, 1.0, 1.0, math.nan])
    _close([s.mean_length for s in stats], [3.0, 6.0, 9.0, math.nan])


def test_ties_are_broken_by_sample_index_not_by_file_order():
    lengths = [10, 10, 10, 10, 20, 20, 20, 20]
    # Default tie-break is the position: 10 10 | 10 10 | 20 20 | 20 20.
    assert assign_intervals(lengths, 4) == [0, 0, 1, 1, 2, 2, 3, 3]
    # With sample indices 7..0 the lower index ranks first among equal lengths:
    # length 10 -> positions 3, 2 (idx 4, 5) in I1, positions 1, 0 (idx 6, 7) in I2.
    indices = [7, 6, 5, 4, 3, 2, 1, 0]
    assert assign_intervals(lengths, 4, tiebreak=indices) == [1, 1, 0, 0, 3, 3, 2, 2]
    # Any reordering of the same samples gives each sample the same interval.
    by_index = dict(zip(indices, assign_intervals(lengths, 4, tiebreak=indices)))
    order = [4, 0, 6, 2, 7, 1, 5, 3]
    shuffled = assign_intervals([lengths[j] for j in order], 4, [indices[j] for j in order])
    assert {indices[j]: i for j, i in zip(order, shuffled)} == by_index


def test_all_equal_lengths_split_by_index_and_one_interval_holds_everything():
    stats = interval_stats([7] * 4, [1, 0, 0, 1], 4, tiebreak=[3, 2, 1, 0])
    # Rank order is index 0, 1, 2, 3 = positions 3, 2, 1, 0 -> correct 1, 0, 0, 1.
    assert [s.n_correct for s in stats] == [1, 0, 0, 1]
    (only,) = interval_stats([3, 1, 2], [1, 1, 0], 1)
    assert (only.n, only.n_correct, only.total_length) == (3, 2, 6)


def test_summarize_averages_over_problems_and_counts_best_intervals():
    p1 = interval_stats(K8_LENGTHS, K8_CORRECT, 4)  # acc 1, .5, .5, .5; len 15, 35, 55, 75
    p2 = interval_stats([9, 3, 6], [1, 0, 1], 4)  # acc 0, 1, 1, -; len 3, 6, 9, -
    rows = summarize([p1, p2])
    assert [r.interval for r in rows] == ["1", "2", "3", "4", "all"]
    assert [r.problems for r in rows] == [2, 2, 2, 1, 2]  # interval 4 is empty for p2
    assert [r.samples for r in rows] == [3, 3, 3, 2, 11]
    # Means over problems: (1 + 0) / 2, (.5 + 1) / 2, (.5 + 1) / 2, .5 (p1 only);
    # all: (5/8 + 2/3) / 2.
    _close([r.accuracy for r in rows], [0.5, 0.75, 0.75, 0.5, (5 / 8 + 2 / 3) / 2])
    # (15 + 3) / 2, (35 + 6) / 2, (55 + 9) / 2, 75; all: (360/8 + 18/3) / 2 = (45 + 6) / 2.
    _close([r.mean_length for r in rows], [9.0, 20.5, 32.0, 75.0, 25.5])
    # p1's best is I1 alone; p2's best is I2 and I3 tied (its empty I4 does not compete).
    _close([r.best_frac for r in rows], [0.5, 0.5, 0.5, 0.0, math.nan])
    _close([r.sole_best_frac for r in rows], [0.5, 0.0, 0.0, 0.0, math.nan])


def test_all_intervals_tied_count_as_best_for_each_but_sole_best_for_none():
    (row1, row2, _) = summarize([[IntervalStats(1, 2, 2, 4), IntervalStats(2, 1, 1, 9)]])
    assert (row1.best_frac, row2.best_frac) == (1.0, 1.0)
    assert (row1.sole_best_frac, row2.sole_best_frac) == (0.0, 0.0)


def test_format_table_has_one_column_per_interval_in_percent():
    table = format_table(summarize([interval_stats(K8_LENGTHS, K8_CORRECT, 4)]))
    lines = table.splitlines()
    assert lines[0].split() == "interval 1 interval 2 interval 3 interval 4 all".split()
    assert lines[1].split()[-5:] == ["100.0", "50.0", "50.0", "50.0", "62.5"]
    assert lines[2].split()[-5:] == ["15.0", "35.0", "55.0", "75.0", "45.0"]


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="--intervals"):
        AnalyzeConfig(tmp_path, tmp_path / "out", intervals=0)
    with pytest.raises(ConfigError, match="--max-plot-problems"):
        AnalyzeConfig(tmp_path, tmp_path / "out", max_plot_problems=-1)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        AnalyzeConfig(tmp_path, tmp_path / "file")


def _shard(directory, index, **columns):
    write_shard(directory, index, pa.table(columns))


def test_read_problems_groups_across_shards_in_first_seen_order(tmp_path):
    _shard(tmp_path, 0, problem_id=["b", "a"], sample_index=[0, 0], length=[5, 6], correct=[1, 0])
    _shard(tmp_path, 1, problem_id=["b"], sample_index=[1], length=[7], correct=[True])
    problems = read_problems(tmp_path)
    assert [p.problem_id for p in problems] == ["b", "a"]
    assert (problems[0].sample_indices, problems[0].lengths) == ([0, 1], [5, 7])
    assert problems[0].correct == [True, True] and problems[1].correct == [False]


@pytest.mark.parametrize(
    "columns, match",
    [
        (dict(problem_id=["a"], sample_index=[0], length=[3]), r"\['correct'\].*o1p grade"),
        (dict(problem_id=["a"], sample_index=[0], length=[3], correct=[None]), "row 0: `correct`"),
        (dict(problem_id=["a"] * 2, sample_index=[0] * 2, length=[3] * 2, correct=[1] * 2), "dup"),
        (dict(problem_id=["a"], sample_index=[0], length=[-1], correct=[1]), "negative length"),
    ],
    ids=["no-correct", "null-correct", "duplicate", "negative-length"],
)
def test_read_problems_rejects_bad_rows_naming_the_shard(tmp_path, columns, match):
    _shard(tmp_path, 0, **columns)
    with pytest.raises(DataError, match=match) as err:
        read_problems(tmp_path)
    assert "part-00000.parquet" in str(err.value)


def test_read_problems_rejects_a_missing_or_empty_directory(tmp_path):
    with pytest.raises(DataError, match="no such directory.*o1p grade"):
        read_problems(tmp_path / "nope")
    with pytest.raises(DataError, match="no part-.*o1p grade"):
        read_problems(tmp_path)
