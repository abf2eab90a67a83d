"""`o1p grade` as a subprocess: JSONL and parquet in, the same rows plus `extracted` and
`correct` out; last-box extraction and the official first-box rule; truncated outputs;
one-line errors for bad rows that leave no output behind."""

import json
import os

import pytest

from tests.helpers.run import error_line, run_o1p

ROWS = [
    # (response, answer, finish_reason, expected extracted (last), expected correct)
    ("so the answer is \\boxed{\\frac{1}{2}}.", "0.5", "stop", "\\frac{1}{2}", True),
    ("try \\boxed{3} then fix: \\boxed{4}", "3", "stop", "4", False),
    ("<think>maybe \\boxed{7}</think>The answer is \\boxed{8}", "8", "stop", "8", True),
    ("Natalia sold 72 clips.\n#### 72", "72", "stop", "72", True),
    ("long reasoning ... \\boxed{5} ... and then", "5", "length", "5", False),
    ("I do not know.", "2", "stop", None, False),
    ("\\boxed{10^{10^{10^{10}}}}", "5", "stop", "10^{10^{10^{10}}}", False),
    (
        "\\boxed{__import__('os').system('touch /tmp/PWNED_o1p')}",
        "0",
        None,  # no finish_reason key: not truncated
        "__import__('os').system('touch /tmp/PWNED_o1p')",
        False,
    ),
]


def _write_jsonl(path, rows):
    with path.open("w") as f:
        for i, (response, answer, reason, *_) in enumerate(rows):
            record = {"id": i, "response": response, "answer": answer}
            if reason is not None:
                record["finish_reason"] = reason
            f.write(json.dumps(record) + "\n")


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _no_leftovers(parent, name):
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_grade_jsonl(tmp_path):
    src, out = tmp_path / "rollouts.jsonl", tmp_path / "graded.jsonl"
    _write_jsonl(src, ROWS)
    proc = run_o1p("grade", src, out, "--workers", "1", timeout=120)
    graded = _read_jsonl(out)
    assert [r["id"] for r in graded] == list(range(len(ROWS)))
    for record, (response, answer, _, extracted, correct) in zip(graded, ROWS):
        assert record["response"] == response and record["answer"] == answer
        assert record["extracted"] == extracted, response
        assert record["correct"] is correct, response
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("o1p grade:")]
    # 3 of 8 correct; 7 of 8 extracted (all but "I do not know."); 1 truncated.
    assert "8 rows" in line and "accuracy 0.3750" in line and "extracted 0.8750" in line
    assert "truncated 1" in line
    assert not os.path.exists("/tmp/PWNED_o1p")
    _no_leftovers(tmp_path, ".graded.jsonl")


FIRST_ROWS = [
    # (response, answer, finish_reason, expected extracted (first), expected correct)
    ROWS[1][:3] + ("3", True),
    ("<think>maybe \\boxed{7}</think> final \\boxed{9}", "7", "stop", "7", True),
    ("Start \\boxed{\\frac{1}{2} oops. Final \\boxed{9}.", "9", "stop", "9", True),
    ("\\boxed{} and then \\boxed{4}", "4", "stop", "", False),
    ("Natalia sold 72 clips.\n#### 72", "72", "stop", None, False),
    ("so \\boxed{2516}", "2516_8", "stop", "2516", False),
    ("so \\boxed{12 pi}", "12\\pi", "stop", "12 pi", True),
]


def test_extract_first_is_the_official_extractor(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_jsonl(src, FIRST_ROWS)
    run_o1p("grade", src, out, "--extract", "first", "--workers", "1", timeout=120)
    for record, (response, _, _, extracted, correct) in zip(_read_jsonl(out), FIRST_ROWS):
        assert record["extracted"] == extracted and record["correct"] is correct, response


def test_grade_parquet_keeps_columns_and_regrades(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "problem_id": [10, 11, 12],
            "response": ["\\boxed{6}", "\\boxed{x=2}", "#### 1,234"],
            "answer": ["6", "2", "1234"],
            "finish_reason": ["stop", "stop", "stop"],
            "correct": [False, False, False],  # stale column from an earlier run: replaced
        }
    )
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, src)
    run_o1p("grade", src, out, "--workers", "1", timeout=120)
    graded = pq.read_table(out)
    assert graded.column_names == [
        "problem_id",
        "response",
        "answer",
        "finish_reason",
        "extracted",
        "correct",
    ]
    assert graded.column("problem_id").to_pylist() == [10, 11, 12]
    assert graded.column("extracted").to_pylist() == ["6", "x=2", "1234"]
    assert graded.column("correct").to_pylist() == [True, True, True]


def test_row_without_answer_is_a_one_line_error(tmp_path):
    src, out = tmp_path / "bad.jsonl", tmp_path / "graded.jsonl"
    src.write_text(
        json.dumps({"response": "\\boxed{1}", "answer": "1"})
        + "\n"
        + json.dumps({"response": "\\boxed{1}", "answer": "1"})
        + "\n"
        + json.dumps({"response": "\\boxed{2}"})
        + "\n"
    )
    proc = run_o1p("grade", src, out, "--workers", "1", check=False, timeout=120)
    line = error_line(proc)
    assert "bad.jsonl row 2" in line and "answer" in line
    _no_leftovers(tmp_path, "graded.jsonl")


def test_parquet_without_response_column_is_a_one_line_error(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src, out = tmp_path / "bad.parquet", tmp_path / "graded.parquet"
    pq.write_table(pa.table({"text": ["\\boxed{1}"], "answer": ["1"]}), src)
    line = error_line(run_o1p("grade", src, out, "--workers", "1", check=False, timeout=120))
    assert "bad.parquet row 0" in line and "response" in line
    _no_leftovers(tmp_path, "graded.parquet")
