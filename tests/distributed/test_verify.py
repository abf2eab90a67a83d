"""`o1p convert verify` under torchrun: HF and megatron agree at every parallel layout (each
launched once, for one of the models)."""

import re

import pytest

from tests.helpers.run import run_o1p, run_torchrun

pytestmark = pytest.mark.distributed
LINE = re.compile(r"max \|logit diff\| = ([0-9.e+-]+), max \|logprob diff\| = ([0-9.e+-]+)")


def _diffs(stdout: str) -> tuple[float, float]:
    match = LINE.search(stdout)
    assert match, stdout
    return float(match.group(1)), float(match.group(2))


def _verify(nproc: int, hf_dir, mcore_dir, *extra, check: bool = True):
    return run_torchrun(
        nproc, "convert", "verify", "--hf-dir", hf_dir, "--mcore-dir", mcore_dir, *extra,
        check=check,
    )  # fmt: skip


def _assert_passes(proc) -> None:
    logit_diff, logprob_diff = _diffs(proc.stdout)
    assert "PASS" in proc.stdout and logit_diff < 1e-4 and logprob_diff < 1e-4


@pytest.mark.parametrize(
    "tp, pp, nproc",
    [(1, 1, 2), (2, 2, 4)],
    ids=["dp2", "tp2xpp2"],
)
def test_qwen2_verify_passes(qwen2_mcore, tiny_qwen2, tp, pp, nproc):
    """TP=1 runs as data parallel 2: only one replica loads HF and reports (its figures reach
    every rank). TP=2 x PP=2 covers both splits of the qkv bias and the tied head at once."""
    parallel = ["--tensor-model-parallel-size", tp, "--pipeline-model-parallel-size", pp]
    _assert_passes(_verify(nproc, tiny_qwen2, qwen2_mcore, *parallel))


LAYOUTS = {
    "tp2": (2, ["--tensor-model-parallel-size", "2"]),
    "pp2": (2, ["--pipeline-model-parallel-size", "2"]),
    "tp2xpp2": (4, ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2"]),
}


@pytest.mark.parametrize(
    "tied, layout",
    [(True, "tp2"), (True, "tp2xpp2"), (False, "pp2")],
    ids=["tied-tp2", "tied-tp2xpp2", "untied-pp2"],
)
def test_qwen3_verify_passes(request, tied, layout):
    """Qwen3: q/k norms and head_dim 32 != hidden / heads; the untied checkpoint is recorded
    as the TE spec and verified in the local one. Each layout once (the README's figures
    cover all six; a launch is 10-15 s of the suite's budget): TP and PP for the tied model,
    where the output layer is the embedding, PP for the untied one, whose lm_head lives on the
    last stage."""
    suffix = "" if tied else "_untied"
    hf_dir = request.getfixturevalue(f"tiny_qwen3{suffix}")
    mcore_dir = request.getfixturevalue(f"qwen3{suffix}_mcore")
    nproc, extra = LAYOUTS[layout]
    proc = _verify(nproc, hf_dir, mcore_dir, "--spec", "local", *extra)
    _assert_passes(proc)
    print(proc.stdout.strip().splitlines()[-1])


def test_qwen3_verify_passes_with_sequence_parallel(qwen3_mcore, tiny_qwen3):
    """Under sequence parallelism the local spec swaps megatron's q/k norm (which refuses SP)
    for `specs.HeadRMSNorm`."""
    extra = ["--tensor-model-parallel-size", "2", "--sequence-parallel"]
    _assert_passes(_verify(2, tiny_qwen3, qwen3_mcore, *extra))


@pytest.mark.parametrize(
    "nproc, extra",
    [
        (4, ["--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size", "2"]),
        (
            2,
            ["--pipeline-model-parallel-size", "2", "--num-layers-per-virtual-pipeline-stage", "1"],
        ),
    ],
    ids=[
        "tp2xpp2",
        "pp2-vpp2",
    ],  # sequence parallel: test_qwen3_verify_passes_with_sequence_parallel
)
def test_llama_te_recorded_checkpoint_verifies_in_local_spec(llama_mcore, tiny_llama, nproc, extra):
    _assert_passes(_verify(nproc, tiny_llama, llama_mcore, "--spec", "local", *extra))


def test_verify_fails_with_exit_1_above_tolerance(qwen2_mcore, tiny_qwen2):
    extra = ["--tensor-model-parallel-size", "2", "--tolerance", "1e-15"]
    proc = _verify(2, tiny_qwen2, qwen2_mcore, *extra, check=False)
    assert proc.returncode == 1 and "FAIL" in proc.stdout


def test_verify_single_process_without_torchrun(qwen2_mcore, tiny_qwen2):
    proc = run_o1p("convert", "verify", "--hf-dir", tiny_qwen2, "--mcore-dir", qwen2_mcore)
    assert "PASS" in proc.stdout
