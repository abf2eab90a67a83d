"""`o1p sample` SIGKILLed mid-run and rerun: every (problem, sample) exactly once, as uninterrupted.

A real kill, not a simulated one: `python -m megatron_o1p sample` runs as a subprocess on a tiny
Qwen2 with one problem per shard, and is SIGKILLed as soon as its first complete
`part-*.parquet` appears. The same command is then rerun. The result must hold exactly K rows
per problem, no duplicate (problem_id, sample_index), no `.tmp` leftovers, the shards complete
at kill time untouched, and every row equal to the row of an uninterrupted run into another
directory (same seed). The uninterrupted run goes alongside the killed one to save time.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.helpers.run import REPO

pytest.importorskip("vllm")

# 20 problems at ~0.2-0.4 s each on 2 cores: the first shard lands ~8 s in (engine start), the
# last several seconds later, so the kill falls well inside the run.
NUM_PROBLEMS, K, MAX_TOKENS = 20, 4, 128
POLL_S = 0.01
DEADLINE_S = 300


@pytest.fixture(scope="module")
def model(vllm_tiny_qwen2):
    return vllm_tiny_qwen2


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    path = tmp_path_factory.mktemp("problems") / "p.jsonl"
    rows = [
        {"problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)}
        for i in range(NUM_PROBLEMS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _start(model, problems, out, log) -> subprocess.Popen:
    """`python -m megatron_o1p sample ...` in the background, output to the file `log`."""
    cmd = [
        sys.executable, "-m", "megatron_o1p", "sample", "--model", model, "--problems", problems,
        "--preset", "math", "--num-samples", K, "--temperature", 0.7, "--top-p", 0.8,
        "--max-tokens", MAX_TOKENS, "--seed", 5, "--problems-per-shard", 1, "--no-progress",
        "--out", out,
    ]  # fmt: skip
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    with open(log, "w") as f:  # a file, not a pipe: nobody reads while both runs go
        return subprocess.Popen(
            [str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, text=True, env=env
        )


def _finish(proc: subprocess.Popen, log) -> str:
    """Wait for a run that must succeed; its output."""
    try:
        proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = log.read_text()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output[-4000:]}"
    return output


def _shards(out) -> list[str]:
    return sorted(p.name for p in out.glob("part-*.parquet"))


def _rows(out) -> dict:
    rows = {}
    for name in _shards(out):
        for r in pq.read_table(out / name).to_pylist():
            key = (r["problem_id"], r["sample_index"])
            assert key not in rows, f"duplicate {key} (in {name})"
            rows[key] = r
    return rows


def test_sigkill_mid_run_then_rerun_equals_uninterrupted(model, problems, tmp_path):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    logs = {name: tmp_path / f"{name}.log" for name in ("reference", "killed", "rerun")}
    ref_proc = _start(model, problems, reference, logs["reference"])
    try:
        proc = _start(model, problems, killed, logs["killed"])
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not _shards(killed) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
            proc.send_signal(signal.SIGKILL)  # as soon as the first shard is complete
            proc.wait()
        finally:
            proc.kill()
        assert proc.returncode == -signal.SIGKILL, (
            f"o1p sample was not killed mid-run (exit {proc.returncode}); make the job longer\n"
            f"{logs['killed'].read_text()[-4000:]}"
        )
        at_kill = {name: (killed / name).stat().st_mtime_ns for name in _shards(killed)}
        # Meaningful only if the kill landed mid-run: some shards done, some not.
        assert 1 <= len(at_kill) < NUM_PROBLEMS, sorted(at_kill)

        output = _finish(_start(model, problems, killed, logs["rerun"]), logs["rerun"])
        todo = NUM_PROBLEMS - len(at_kill)
        assert f"{todo} shards written ({todo * K} rows" in output, output[-2000:]
        assert f"{len(at_kill)} of {NUM_PROBLEMS} already complete" in output, output[-2000:]
        _finish(ref_proc, logs["reference"])
    finally:
        ref_proc.kill()
        ref_proc.wait()

    # Shards complete at kill time were kept, not rewritten.
    assert {n: (killed / n).stat().st_mtime_ns for n in at_kill} == at_kill
    assert _shards(killed) == [f"part-{i:05d}.parquet" for i in range(NUM_PROBLEMS)]
    assert sorted(p.name for p in killed.iterdir()) == ["config.json", *_shards(killed)], (
        "leftover files (.tmp?) after the rerun"
    )
    rows, expected = _rows(killed), _rows(reference)
    assert sorted(rows) == sorted((str(i), k) for i in range(NUM_PROBLEMS) for k in range(K))
    assert sorted(rows) == sorted(expected)
    for key, row in rows.items():
        ref = expected[key]
        assert row["response_ids"] == ref["response_ids"], key
        # Same seed and batching: the whole row is the same, log-probs up to float noise.
        assert {c: v for c, v in row.items() if c != "sampler_logprobs"} == {
            c: v for c, v in ref.items() if c != "sampler_logprobs"
        }, key
        assert row["sampler_logprobs"] == pytest.approx(ref["sampler_logprobs"], abs=1e-4), key
