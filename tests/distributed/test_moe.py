"""Qwen3-MoE end to end on gloo: HF -> megatron -> HF bitwise (both specs' key layouts), verify
at EP2, TP2xEP2 and PP2xEP2 with every expert of every layer routed tokens, ref-logprobs and
training at EP2 equal to EP1, a stopped EP2 run resumed bitwise, the aux loss logged, and bad
layouts refused in one line."""

import re
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.run import error_line, run_o1p, run_torchrun
from tests.helpers.toy_data import write_toy_dataset

pytestmark = pytest.mark.distributed
COMMON = ["--global-batch-size", "4", "--micro-batch-size", "2", "--seq-length", "32",
          "--lr", "1e-3", "--train-iters", "4"]  # fmt: skip
EP2 = ["--expert-model-parallel-size", "2"]


def _losses(stdout: str) -> list[float]:
    return [float(x) for x in re.findall(r"\| loss: ([-0-9.E+]+)", stdout)]


def _weights(run_dir):
    from megatron_o1p.checkpoint.reader import GlobalTensorReader, resolve_iteration_dir

    reader = GlobalTensorReader(resolve_iteration_dir(run_dir))
    keys = [k for k, v in reader.metadata.state_dict_metadata.items() if hasattr(v, "chunks")]
    return {k: reader.read(k) for k in keys}


@pytest.mark.parametrize("spec", ["local", "te"])
def test_round_trip_is_bitwise(tiny_qwen3_moe, qwen3_moe_mcore, tmp_path, spec):
    """Every expert's gate/up/down, the router and the pre-MLP norm come back bit for bit, from
    the sequential-experts (local) and the grouped-GEMM (TE) layouts alike."""
    mcore = qwen3_moe_mcore
    if spec == "te":
        mcore = tmp_path / "te"
        run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen3_moe, "--out", mcore,
                "--spec", "te")  # fmt: skip
    run_o1p("convert", "mcore-to-hf", "--mcore-dir", mcore, "--out", tmp_path / "back")
    source = load_file(tiny_qwen3_moe / "model.safetensors")
    back = {}
    for shard in (tmp_path / "back").glob("*.safetensors"):
        back.update(load_file(shard))
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in source
    assert back.keys() == source.keys()
    assert all(torch.equal(back[k], source[k]) for k in source)


VERIFY_LAYOUTS = {
    "ep2": (2, EP2),
    "tp2xep2": (4, [*EP2, "--tensor-model-parallel-size", "2"]),
    "pp2xep2": (4, [*EP2, "--pipeline-model-parallel-size", "2"]),
}


@pytest.mark.parametrize("layout", list(VERIFY_LAYOUTS))
def test_verify_routes_tokens_to_every_expert(tiny_qwen3_moe, qwen3_moe_mcore, layout):
    nproc, flags = VERIFY_LAYOUTS[layout]
    proc = run_torchrun(nproc, "convert", "verify", "--hf-dir", tiny_qwen3_moe,
                        "--mcore-dir", qwen3_moe_mcore, *flags)  # fmt: skip
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("verify:"))
    assert "EP=2" in line and line.endswith("PASS"), line
    assert float(re.search(r"max \|logit diff\| = ([0-9.e+-]+)", line)[1]) < 1e-5
    assert int(re.search(r"fewest tokens routed to an expert = (\d+)", line)[1]) > 0


def test_verify_fails_when_an_expert_gets_no_token(tiny_qwen3_moe, qwen3_moe_mcore):
    """Two tokens reach at most 4 of the 8 experts: the batch cannot test the others."""
    proc = run_o1p("convert", "verify", "--hf-dir", tiny_qwen3_moe, "--mcore-dir",
                   qwen3_moe_mcore, "--micro-batch-size", "1", "--seq-length", "2",
                   check=False)  # fmt: skip
    assert proc.returncode == 1
    assert "fewest tokens routed to an expert = 0 (an idle expert is untested" in proc.stdout


@pytest.fixture(scope="module")
def moe_data(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("moe") / "train.parquet")


@pytest.fixture(scope="module")
def ep1(qwen3_moe_mcore, moe_data, tmp_path_factory):
    """The EP=1 run on 2 data-parallel ranks every EP=2 run is compared with."""
    run = tmp_path_factory.mktemp("ep1") / "run"
    proc = run_torchrun(2, "train", "--load", qwen3_moe_mcore, "--data", moe_data,
                        "--save", run, *COMMON)  # fmt: skip
    return run, proc.stdout


def test_ep2_trains_as_ep1_and_logs_the_aux_loss(qwen3_moe_mcore, moe_data, ep1, tmp_path):
    """The same data-parallel layout (2 ranks) with the experts split over them: the loss
    curve is EP1's; a run stopped after iteration 2 resumes to bitwise the same weights; the
    load-balancing loss (coefficient 0.001, 2 layers, about 1 each when balanced) is logged."""
    losses = _losses(ep1[1])
    assert len(losses) == 4 and len(set(losses)) == 4
    aux = [float(x) for x in re.findall(r"\| aux loss: ([0-9.]+)", ep1[1])]
    assert len(aux) == 4 and all(0.001 < a < 0.02 for a in aux), aux

    ep2, stopped = tmp_path / "ep2", tmp_path / "stopped"
    args = ["train", "--load", qwen3_moe_mcore, "--data", moe_data, *COMMON, *EP2]
    proc = run_torchrun(2, *args, "--save", ep2)
    assert _losses(proc.stdout) == pytest.approx(losses, rel=1e-6, abs=1e-6)
    run_torchrun(2, *args, "--save", stopped, "--exit-after-iters", "2")
    resumed = run_torchrun(2, *args, "--save", stopped)
    assert "at iteration 2/4" in resumed.stdout
    assert _losses(resumed.stdout) == _losses(proc.stdout)[2:]
    reference, weights = _weights(ep2), _weights(stopped)
    assert any(".mlp.experts." in k for k in reference) and weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


def test_tp2_with_ep2_trains_as_tp2_alone(qwen3_moe_mcore, moe_data, tmp_path):
    """4 ranks, TP2 with sequence parallelism: experts over the EP2 x expert-DP ranks, whole
    (ETP 1, the EP default), give the loss curve of the experts split over TP (EP 1's ETP =
    TP, megatron's layout without expert parallelism)."""
    args = ["train", "--load", qwen3_moe_mcore, "--data", moe_data, *COMMON,
            "--tensor-model-parallel-size", "2", "--sequence-parallel"]  # fmt: skip
    tp2 = _losses(run_torchrun(4, *args, "--save", tmp_path / "tp2").stdout)
    tp2_ep2 = _losses(run_torchrun(4, *args, *EP2, "--save", tmp_path / "tp2xep2").stdout)
    assert len(tp2) == 4 and tp2_ep2 == pytest.approx(tp2, rel=1e-6, abs=1e-6)


def test_trained_moe_checkpoint_converts_to_hf(ep1, tmp_path):
    from transformers import AutoModelForCausalLM

    run_o1p("convert", "mcore-to-hf", "--mcore-dir", ep1[0], "--out", tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    assert model.config.num_experts == 8 or model.config.num_local_experts == 8


def test_ref_logprobs_at_ep2_equal_ep1(qwen3_moe_mcore, tmp_path):
    drop = ["ref_logprobs", "ref_chosen_logprob", "ref_rejected_logprob", "chosen_ids",
            "rejected_ids"]  # fmt: skip
    a = write_toy_dataset(tmp_path / "a.parquet", problem_id=lambda i: f"p{i}", sample_index=0)
    pq.write_table(pq.read_table(a).drop_columns(drop), a)
    b = tmp_path / "b.parquet"
    shutil.copy(a, b)
    run_o1p("ref-logprobs", "--load", qwen3_moe_mcore, "--data", a, "--seq-length", "32")
    run_torchrun(2, "ref-logprobs", "--load", qwen3_moe_mcore, "--data", b, "--seq-length",
                 "32", *EP2)  # fmt: skip
    rows_a, rows_b = pq.read_table(a).to_pylist(), pq.read_table(b).to_pylist()
    for ra, rb in zip(rows_a, rows_b):
        assert ra["ref_logprobs"] == pytest.approx(rb["ref_logprobs"], abs=1e-5, nan_ok=True)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--expert-model-parallel-size", "3"], "must be a multiple of --expert-model-parallel"),
        (["--tensor-model-parallel-size", "2"], "needs --sequence-parallel; add it"),
        (
            [
                "--tensor-model-parallel-size",
                "2",
                "--sequence-parallel",
                "--expert-tensor-parallel-size",
                "1",
            ],
            "must equal --tensor-model-parallel-size (2)",
        ),
    ],  # fmt: skip
)
def test_bad_expert_layouts_fail_in_one_line(qwen3_moe_mcore, moe_data, tmp_path, flags, message):
    proc = run_o1p("train", "--load", qwen3_moe_mcore, "--data", moe_data, "--save",
                   tmp_path / "run", *COMMON, *flags, check=False)  # fmt: skip
    line = error_line(proc)
    assert message in line, line


def test_expert_flags_on_a_dense_model_fail_in_one_line(qwen3_mcore, moe_data, tmp_path):
    proc = run_o1p("train", "--load", qwen3_mcore, "--data", moe_data, "--save",
                   tmp_path / "run", *COMMON, "--expert-model-parallel-size", "2",
                   check=False)  # fmt: skip
    assert "--expert-model-parallel-size 2 needs a mixture-of-experts model" in error_line(proc)
