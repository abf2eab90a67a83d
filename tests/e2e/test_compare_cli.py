"""`o1p compare` on hand-written `o1p evaluate` summaries (the Marco-o1 rows of the paper's
Table 2): the printed table, compare.csv, the plot, --names, both AES modes, and one-line
refusals that leave no output behind."""

import csv
import json

import pytest

from tests.helpers.run import error_line, run_o1p

SHA = {"math": "a" * 64, "gsm8k": "b" * 64, "gaokao": "c" * 64}
# method -> benchmark -> (accuracy %, mean length); Marco-o1-7B rows of Table 2.
METHODS = {
    "baseline": {"math": (73.8, 1156), "gsm8k": (89.2, 530), "gaokao": (57.1, 1112)},
    "dpo": {"math": (71.8, 761), "gsm8k": (88.6, 410), "gaokao": (56.6, 780)},
    "o1-pruner": {"math": (77.5, 657), "gsm8k": (91.4, 343), "gaokao": (61.6, 664)},
}
PRINTED_AES = {"dpo": [0.42, 0.25, 0.32, 0.33], "o1-pruner": [0.58, 0.43, 0.64, 0.55]}


def _summary(results: dict, sha: dict = SHA) -> dict:
    return {
        "stage": "evaluate",
        "format_version": 1,
        "model": "/models/x",
        "settings": {"num_samples": 1, "temperature": 0.0},
        "benchmarks": {
            name: {
                "file": f"/data/{name}.jsonl",
                "sha256": sha[name],
                "accuracy": acc / 100,
                "mean_length": length,
                "num_problems": 100,
            }
            for name, (acc, length) in results.items()
        },
    }


def _write(root, name, summary):
    d = root / name
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def runs(tmp_path):
    return {m: _write(tmp_path / "eval", m, _summary(r)) for m, r in METHODS.items()}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_csv_and_plot(runs, tmp_path):
    out = tmp_path / "cmp"
    proc = run_o1p(
        "compare", "--baseline", runs["baseline"], runs["dpo"], runs["o1-pruner"],
        "--out", out, "--paper-aes",
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    header = next(ln for ln in lines if ln.startswith("| method"))
    assert header.startswith("| method | math Acc | math Len | math AES | gsm8k Acc")
    assert header.rstrip().endswith("Avg Acc | Avg Len | Avg AES |")
    o1p = next(ln for ln in lines if ln.startswith("| o1-pruner"))
    assert o1p.split(" | ")[1:4] == ["77.5", "657", "0.58"]
    assert o1p.rstrip(" |").endswith("0.55")
    assert next(ln for ln in lines if ln.startswith("| baseline")).split(" | ")[3] == "0.00"
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.md", "compare.png"]
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| o1-pruner | 77.5 | 657 | 0.58 |" in (out / "compare.md").read_text()

    rows = _csv(out / "compare.csv")
    assert [r["method"] for r in rows] == ["baseline", "dpo", "o1-pruner"]
    assert list(rows[0])[:5] == ["method", "run_dir", "math_acc", "math_length", "math_aes"]
    base = rows[0]
    assert float(base["avg_aes"]) == 0.0 and float(base["math_acc"]) == pytest.approx(73.8)
    assert float(base["avg_length"]) == pytest.approx((1156 + 530 + 1112) / 3)
    for r in rows[1:]:
        got = [float(r[f"{b}_aes"]) for b in ("math", "gsm8k", "gaokao", "avg")]
        assert got == pytest.approx(PRINTED_AES[r["method"]], abs=0.005)
        per = got[:3]
        assert got[3] == pytest.approx(sum(per) / 3)  # Avg AES: mean of per-benchmark AES
        acc = [METHODS[r["method"]][b][0] for b in ("math", "gsm8k", "gaokao")]
        assert float(r["avg_acc"]) == pytest.approx(sum(acc) / 3)


def test_stated_formula_names_and_in_process_table(runs, tmp_path):
    out = tmp_path / "cmp"
    proc = run_o1p(
        "compare", "--baseline", runs["baseline"], runs["dpo"], "--out", out,
        "--names", "Baseline,DPO", "--alpha", 1, "--beta", 3, "--gamma", 5,
    )  # fmt: skip
    assert "| DPO | 71.8 | 761 | 0.21 |" in proc.stdout  # the gamma penalty: 0.342 - 5 * 0.027
    assert [r["method"] for r in _csv(out / "compare.csv")] == ["Baseline", "DPO"]

    from megatron_o1p.evaluation.aes import AESWeights
    from megatron_o1p.evaluation.compare import compare_table

    rows = compare_table(runs["baseline"], [runs["o1-pruner"]], weights=AESWeights(paper=True))
    assert [r["method"] for r in rows] == ["baseline", "o1-pruner"]
    assert rows[0]["is_baseline"] and not rows[1]["is_baseline"]
    math_row = rows[1]["benchmarks"]["math"]
    assert math_row["acc"] == pytest.approx(77.5) and math_row["length"] == 657
    assert math_row["d_length"] == pytest.approx((1156 - 657) / 1156)
    assert math_row["d_acc"] == pytest.approx((77.5 - 73.8) / 73.8)
    assert round(rows[1]["average"]["aes"], 2) == 0.55


def _refused(tmp_path, *args):
    out = tmp_path / "cmp"
    proc = run_o1p("compare", *args, "--out", out, check=False)
    line = error_line(proc)
    assert not out.exists()  # nothing written, not even the directory
    return line


def test_mismatched_benchmarks_are_refused_without_output(runs, tmp_path):
    other = dict(METHODS["dpo"])
    del other["gaokao"]
    fewer = _write(tmp_path / "eval", "fewer", _summary(other))
    line = _refused(tmp_path, "--baseline", runs["baseline"], runs["dpo"], fewer)
    assert str(fewer) in line and "lacks benchmark(s) gaokao" in line

    moved = _write(tmp_path / "eval", "moved", _summary(METHODS["dpo"], {**SHA, "gsm8k": "d" * 64}))
    line = _refused(tmp_path, "--baseline", runs["baseline"], moved)
    assert str(moved) in line and "benchmark gsm8k was evaluated on another file" in line

    line = _refused(tmp_path, "--baseline", runs["baseline"], tmp_path / "nowhere")
    assert "nowhere" in line and "no summary.json" in line

    line = _refused(tmp_path, "--baseline", runs["baseline"], runs["dpo"], "--names", "a,b,c")
    assert "--names has 3 name(s) for 2 methods" in line

    twin = _write(tmp_path / "other", "dpo", _summary(METHODS["dpo"]))
    line = _refused(tmp_path, "--baseline", runs["baseline"], runs["dpo"], twin)
    assert "two methods are named 'dpo'" in line and "--names" in line
