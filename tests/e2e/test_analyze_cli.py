"""`o1p analyze` as a subprocess on three tiny graded shards: the per-problem and summary CSVs
match hand-computed values (K = 8 split across two shards, K = 6, K = 3), the plot is a valid
PNG, nothing temporary is left behind, and ungraded or missing input fails in one line."""

import csv
import struct
import zlib

import pyarrow as pa
import pytest

from megatron_o1p.data.shards import write_shard
from tests.helpers.run import error_line, run_o1p

# (problem_id, lengths, correct); sample_index is the position in the list.
PROBLEMS = [
    ("p1", [80, 10, 70, 20, 60, 30, 50, 40], [0, 1, 1, 1, 0, 1, 1, 0]),  # K = 8
    ("p2", [5, 10, 15, 20, 25, 30], [1, 0, 0, 1, 1, 0]),  # K = 6: sizes 2, 1, 2, 1
    ("p3", [9, 3, 6], [1, 0, 1]),  # K = 3: interval 4 is empty
]
# Shards: p1 samples 0-3 | p1 samples 4-7 and p2 | p3.
SHARDS = [[("p1", range(0, 4))], [("p1", range(4, 8)), ("p2", range(6))], [("p3", range(3))]]

# problem_id, interval, n, mean_length, accuracy (from the sorted lengths, two/one per interval)
EXPECTED_PROBLEMS = [
    ("p1", 1, 2, 15.0, 1.0),  # 10 ok, 20 ok
    ("p1", 2, 2, 35.0, 0.5),  # 30 ok, 40 x
    ("p1", 3, 2, 55.0, 0.5),  # 50 ok, 60 x
    ("p1", 4, 2, 75.0, 0.5),  # 70 ok, 80 x
    ("p2", 1, 2, 7.5, 0.5),  # 5 ok, 10 x
    ("p2", 2, 1, 15.0, 0.0),  # 15 x
    ("p2", 3, 2, 22.5, 1.0),  # 20 ok, 25 ok
    ("p2", 4, 1, 30.0, 0.0),  # 30 x
    ("p3", 1, 1, 3.0, 0.0),
    ("p3", 2, 1, 6.0, 1.0),
    ("p3", 3, 1, 9.0, 1.0),
    ("p3", 4, 0, None, None),
]
# interval, problems, samples, mean_length, accuracy, best_frac, sole_best_frac.
# Best intervals: p1 -> 1 alone; p2 -> 3 alone; p3 -> 2 and 3 tied.
EXPECTED_SUMMARY = [
    ("1", 3, 5, (15 + 7.5 + 3) / 3, (1 + 0.5 + 0) / 3, 1 / 3, 1 / 3),
    ("2", 3, 4, (35 + 15 + 6) / 3, (0.5 + 0 + 1) / 3, 1 / 3, 0.0),
    ("3", 3, 5, (55 + 22.5 + 9) / 3, (0.5 + 1 + 1) / 3, 2 / 3, 1 / 3),
    ("4", 2, 3, (75 + 30) / 2, (0.5 + 0) / 2, 0.0, 0.0),
    ("all", 3, 17, (45 + 17.5 + 6) / 3, (5 / 8 + 3 / 6 + 2 / 3) / 3, None, None),
]


def _write_graded(directory, with_correct=True):
    by_id = {pid: (lengths, correct) for pid, lengths, correct in PROBLEMS}
    for index, parts in enumerate(SHARDS):
        names = ("problem_id", "sample_index", "response_text", "length", "correct")
        cols = {name: [] for name in names}
        for pid, samples in parts:
            lengths, correct = by_id[pid]
            for k in samples:
                cols["problem_id"].append(pid)
                cols["sample_index"].append(k)
                cols["response_text"].append("x" * lengths[k])
                cols["length"].append(lengths[k])
                cols["correct"].append(bool(correct[k]))
        if not with_correct:
            del cols["correct"]
        types = {"sample_index": pa.int32(), "length": pa.int32()}
        write_shard(
            directory, index, pa.table({k: pa.array(v, types.get(k)) for k, v in cols.items()})
        )


def _num(cell):
    return None if cell == "" else float(cell)


def _check_png(path):
    """Signature, then chunks with valid CRCs: IHDR first (non-zero size), IEND last."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            assert width > 0 and height > 0
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds


def test_analyze_writes_hand_computed_tables_and_a_png(tmp_path):
    graded, out = tmp_path / "graded", tmp_path / "analysis"
    _write_graded(graded)
    proc = run_o1p("analyze", "--rollouts", graded, "--out", out, "--max-plot-problems", 2)

    with open(out / "length_disharmony.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["problem_id", "interval", "n", "mean_length", "accuracy"]
    got = [(r[0], int(r[1]), int(r[2]), _num(r[3]), _num(r[4])) for r in rows[1:]]
    assert got == EXPECTED_PROBLEMS

    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "interval",
        "problems",
        "samples",
        "mean_length",
        "accuracy",
        "best_frac",
        "sole_best_frac",
    ]
    for row, expected in zip(rows[1:], EXPECTED_SUMMARY, strict=True):
        assert (row[0], int(row[1]), int(row[2])) == expected[:3]
        for cell, value in zip(row[3:], expected[3:]):
            assert _num(cell) == (None if value is None else pytest.approx(value)), row

    _check_png(out / "length_disharmony.png")
    assert sorted(p.name for p in out.iterdir()) == [
        "length_disharmony.csv",
        "length_disharmony.png",
        "summary.csv",
    ]
    # Table 1's layout: a column per interval; accuracy in percent (50.0 = (1 + .5 + 0) / 3).
    lines = proc.stdout.splitlines()
    header = next(ln for ln in lines if ln.lstrip().startswith("interval 1"))
    assert header.split() == "interval 1 interval 2 interval 3 interval 4 all".split()
    accuracy = next(ln for ln in lines if ln.startswith("accuracy (%)"))
    assert accuracy.split()[-5:] == ["50.0", "50.0", "83.3", "25.0", "59.7"]
    assert "3 problems, 17 samples" in proc.stdout


def test_ungraded_rollouts_fail_in_one_line_naming_the_shard(tmp_path):
    rollouts, out = tmp_path / "rollouts", tmp_path / "analysis"
    _write_graded(rollouts, with_correct=False)
    line = error_line(run_o1p("analyze", "--rollouts", rollouts, "--out", out, check=False))
    assert line.startswith("o1p analyze: error: ")
    assert "part-00000.parquet" in line and "['correct']" in line and "o1p grade" in line
    assert not out.exists()


def test_missing_directory_fails_in_one_line(tmp_path):
    missing = tmp_path / "nope"
    proc = run_o1p("analyze", "--rollouts", missing, "--out", tmp_path / "o", check=False)
    line = error_line(proc)
    assert str(missing) in line and "no such directory" in line and "o1p grade" in line
