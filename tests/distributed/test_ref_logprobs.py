"""`o1p ref-logprobs`: the same values at TP=1 and PP=2, packed and padded (and with
`--logprob-impl fused-head` at TP=2), NaN past --seq-length, DPO sums, the rollout mismatch
report, and training step 0 sees ratio 1 against them."""

import math
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.run import run_o1p, run_torchrun
from tests.helpers.toy_data import write_toy_dataset

pytestmark = pytest.mark.distributed
PER_TOKEN_DROP = ["ref_logprobs", "ref_chosen_logprob", "ref_rejected_logprob", "chosen_ids",
                  "rejected_ids"]  # fmt: skip


def _dataset(path, drop):
    write_toy_dataset(path, problem_id=lambda i: f"p{i}", sample_index=0)
    pq.write_table(pq.read_table(path).drop_columns(drop), path)
    return path


def test_per_token_values_match_across_layouts_and_give_ratio_one(qwen2_mcore, tmp_path):
    a = _dataset(tmp_path / "a.parquet", PER_TOKEN_DROP)
    b = tmp_path / "b.parquet"
    b.write_bytes(a.read_bytes())
    # padded at TP=1, packed (the default) into fixed-size rows at PP=2
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", a, "--seq-length", "16",
            "--no-pack-sequences")  # fmt: skip
    run_torchrun(2, "ref-logprobs", "--load", qwen2_mcore, "--data", b, "--seq-length", "16",
                 "--pipeline-model-parallel-size", "2", "--micro-batch-size", "3")  # fmt: skip
    rows_a, rows_b = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
    for ra, rb in zip(rows_a, rows_b):
        assert len(ra["ref_logprobs"]) == len(ra["response_ids"])
        kept = 16 + 1 - len(ra["prompt_ids"])  # training cuts at seq_length + 1 tokens
        for j, (x, y) in enumerate(zip(ra["ref_logprobs"], rb["ref_logprobs"])):
            assert math.isnan(x) == (j >= kept) and math.isnan(y) == (j >= kept)
            if j < kept:
                assert abs(x - y) < 1e-5 and x < 0

    full = _dataset(tmp_path / "full.parquet", PER_TOKEN_DROP)
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", full, "--seq-length", "32")
    proc = run_o1p("train", "--load", qwen2_mcore, "--data", full, "--save", tmp_path / "run",
                   "--global-batch-size", "4", "--micro-batch-size", "2", "--seq-length", "32",
                   "--train-iters", "1")  # fmt: skip
    ratio = float(re.search(r"ratio: ([0-9.]+)", proc.stdout).group(1))
    kl = float(re.search(r"approx kl: ([0-9.]+)", proc.stdout).group(1))
    assert ratio == pytest.approx(1.0, abs=1e-4) and kl < 1e-6, proc.stdout


def test_fused_head_gives_chunked_values_and_ratio_one(qwen2_mcore, tmp_path):
    a = _dataset(tmp_path / "a.parquet", PER_TOKEN_DROP)
    b = tmp_path / "b.parquet"
    b.write_bytes(a.read_bytes())
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", a, "--seq-length", "32")
    run_torchrun(2, "ref-logprobs", "--load", qwen2_mcore, "--data", b, "--seq-length", "32",
                 "--tensor-model-parallel-size", "2", "--logprob-impl", "fused-head")  # fmt: skip
    for ra, rb in zip(pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()):
        for x, y in zip(ra["ref_logprobs"], rb["ref_logprobs"]):
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-5
    # Chunked reference log-probs, fused-head training: step 0 sees ratio 1.
    proc = run_o1p("train", "--load", qwen2_mcore, "--data", a, "--save", tmp_path / "run",
                   "--global-batch-size", "4", "--micro-batch-size", "2", "--seq-length", "32",
                   "--train-iters", "1", "--logprob-impl", "fused-head")  # fmt: skip
    ratio = float(re.search(r"ratio: ([0-9.]+)", proc.stdout).group(1))
    kl = float(re.search(r"approx kl: ([0-9.]+)", proc.stdout).group(1))
    assert ratio == pytest.approx(1.0, abs=1e-4) and kl < 1e-6, proc.stdout


def test_dpo_sums_and_mismatch_report(qwen2_mcore, tmp_path):
    pairs = _dataset(tmp_path / "dpo.parquet", ["ref_chosen_logprob", "ref_rejected_logprob"])
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", pairs, "--seq-length", "64")
    row = pq.read_table(pairs).to_pylist()[0]
    assert row["ref_chosen_logprob"] < 0 and row["ref_rejected_logprob"] < row["ref_chosen_logprob"]
    padded = _dataset(
        tmp_path / "dpo_padded.parquet", ["ref_chosen_logprob", "ref_rejected_logprob"]
    )
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", padded, "--seq-length", "64",
            "--no-pack-sequences")  # fmt: skip
    for packed_row, padded_row in zip(
        pq.read_table(pairs).to_pylist(), pq.read_table(padded).to_pylist()
    ):
        for side in ("ref_chosen_logprob", "ref_rejected_logprob"):
            assert packed_row[side] == pytest.approx(padded_row[side], abs=1e-4)

    data = _dataset(tmp_path / "d.parquet", PER_TOKEN_DROP)
    run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", data, "--seq-length", "64")
    rows = pq.read_table(data).to_pylist()
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    sampled = [{"problem_id": r["problem_id"], "sample_index": 0,
                "sampler_logprobs": [x + (0.05 if i % 2 else 0.5) for x in r["ref_logprobs"]]}
               for i, r in enumerate(rows)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(sampled), rollouts / "part-00000.parquet")
    proc = run_o1p("ref-logprobs", "--load", qwen2_mcore, "--data", data, "--seq-length", "64",
                   "--rollouts", rollouts, "--mismatch-threshold", "0.1")  # fmt: skip
    match = re.search(r"per token = ([0-9.]+) over (\d+) sequences; ([0-9.]+)% of", proc.stdout)
    assert match, proc.stdout
    assert int(match.group(2)) == 16 and float(match.group(3)) == pytest.approx(50.0)
