"""`o1p train` end to end on a tiny converted model: the same loss curve at TP=1, TP=2 and PP=2
(and with the fused head); a stopped run, or one SIGKILLed inside a save, resumes to bitwise the
same weights; SFT and DPO learn; bad input fails in one line before any compute.

Launches cost seconds each, so one uninterrupted TP=1 run (`straight`) is the reference of
every Qwen2 comparison."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers.run import _env, error_line, run_o1p, run_torchrun
from tests.helpers.toy_data import write_toy_dataset

pytestmark = pytest.mark.distributed
COMMON = ["--global-batch-size", "4", "--micro-batch-size", "2", "--seq-length", "32",
          "--lr", "1e-3"]  # fmt: skip


def _kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL the run and every process it started (checkpoint writer workers included), as a
    scheduler kills a job; killing only the parent leaves those workers orphaned."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _losses(stdout: str) -> list[float]:
    return [float(x) for x in re.findall(r"\| loss: ([-0-9.E+]+)", stdout)]


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "train.parquet")


def _train(nproc, mcore, data, save, *extra):
    args = ["train", "--load", mcore, "--data", data, "--save", save, *COMMON, *extra]
    return run_torchrun(nproc, *args) if nproc > 1 else run_o1p(*args)


@pytest.fixture(scope="module")
def straight(qwen2_mcore, toy_data, tmp_path_factory):
    """The uninterrupted 6-iteration TP=1 run every other Qwen2 run is compared with: its
    folder, losses and final weights (with optimizer state)."""
    run = tmp_path_factory.mktemp("straight") / "run"
    proc = _train(1, qwen2_mcore, toy_data, run, "--train-iters", "6")
    return run, _losses(proc.stdout), _weights(run)


ITERS = ["--train-iters", "6"]
QWEN2_LAYOUTS = {
    "tp2": ["--tensor-model-parallel-size", "2"],
    "pp2": ["--pipeline-model-parallel-size", "2"],
    # `straight` packs its rows (the default); this one pads them
    "tp2-padded": ["--tensor-model-parallel-size", "2", "--no-pack-sequences"],
    # Tied embeddings at PP=2: the fused head's gradient reaches the last stage's tied copy and,
    # through megatron's embedding all-reduce, the embedding: the loss curve is chunked's.
    "pp2-fused-head": ["--pipeline-model-parallel-size", "2", "--logprob-impl", "fused-head"],
}  # fmt: skip


@pytest.mark.parametrize("layout", list(QWEN2_LAYOUTS))
def test_loss_curve_is_the_same_at_every_layout(qwen2_mcore, toy_data, straight, tmp_path, layout):
    losses = straight[1]
    assert len(losses) == 6 and len(set(losses)) == 6  # it trains: losses move
    proc = _train(2, qwen2_mcore, toy_data, tmp_path / layout, *ITERS, *QWEN2_LAYOUTS[layout])
    assert _losses(proc.stdout) == pytest.approx(losses, rel=1e-5, abs=1e-6)


def test_qwen3_loss_curve_is_the_same_at_tp2_with_sequence_parallel(
    qwen3_mcore, toy_data, tmp_path
):
    """Qwen3's q/k norm weights are shared by the heads of every TP rank: megatron sums their
    grads over TP (by name), with sequence parallelism too (specs.HeadRMSNorm)."""
    iters = ["--train-iters", "3"]
    tp1 = _losses(_train(1, qwen3_mcore, toy_data, tmp_path / "tp1", *iters).stdout)
    sp = ["--tensor-model-parallel-size", "2", "--sequence-parallel"]
    tp2 = _losses(_train(2, qwen3_mcore, toy_data, tmp_path / "tp2-sp", *iters, *sp).stdout)
    assert len(tp1) == 3 and len(set(tp1)) == 3
    assert tp2 == pytest.approx(tp1, rel=1e-5, abs=1e-6)


def _weights(run_dir):
    from megatron_o1p.checkpoint.reader import GlobalTensorReader, resolve_iteration_dir

    reader = GlobalTensorReader(resolve_iteration_dir(run_dir))
    keys = [k for k, v in reader.metadata.state_dict_metadata.items() if hasattr(v, "chunks")]
    return {k: reader.read(k) for k in keys}


def _train_cmd(mcore, data, save, *extra) -> list[str]:
    return [sys.executable, "-m", "megatron_o1p", "train", "--load", str(mcore), "--data",
            str(data), "--save", str(save), *COMMON, *map(str, extra)]  # fmt: skip


def test_a_stopped_run_resumes_bitwise_and_at_another_layout(
    qwen2_mcore, toy_data, straight, tmp_path
):
    """Stopped after iteration 2 (--exit-after-iters), the same command finishes with bitwise
    the uninterrupted run's weights (optimizer state included); the same checkpoint resumed at
    TP=2 continues its loss curve."""
    _, losses, reference = straight
    assert any(k.startswith("optimizer.") for k in reference)  # optimizer state is saved too
    stopped, other_layout = tmp_path / "stopped", tmp_path / "tp2"
    _train(1, qwen2_mcore, toy_data, stopped, *ITERS, "--exit-after-iters", "2")
    shutil.copytree(stopped, other_layout)

    resumed = _train(1, qwen2_mcore, toy_data, stopped, *ITERS)
    assert "resumed" in resumed.stdout and "at iteration 2/6" in resumed.stdout
    assert _losses(resumed.stdout) == losses[2:]
    weights = _weights(stopped)
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)

    tp2 = ["--tensor-model-parallel-size", "2"]
    proc = _train(2, qwen2_mcore, toy_data, other_layout, *ITERS, *tp2)
    assert "at iteration 2/6" in proc.stdout
    assert _losses(proc.stdout) == pytest.approx(losses[2:], rel=1e-5, abs=1e-6)
    assert (other_layout / "latest_checkpointed_iteration.txt").read_text().strip() == "6"


@pytest.mark.parametrize(
    "iteration, window", [(4, "writing"), (4, "written"), (4, "renamed"), (2, "renamed")]
)
def test_sigkill_inside_a_save_leaves_the_previous_checkpoint(
    qwen2_mcore, toy_data, straight, tmp_path, iteration, window
):
    """SIGKILL while iteration 4 is being saved (iteration 2 complete): while megatron writes
    the temporary folder (killed as soon as it appears), once it is written but not renamed,
    and once renamed but before the tracker names it (the fault points "save.written" and
    "save.renamed" of `megatron_o1p/testing/faults.py`, selected with O1P_FAULT_POINT, hold the
    process in those two windows of the real save). The run still loads iteration 2 and, rerun,
    ends with bitwise the uninterrupted run's weights. Killed inside the first save (iteration
    2), the rerun starts over from --load."""
    run = tmp_path / "run"
    pending = run / f".iter_{iteration:07d}.tmp"
    env = _env()
    if window != "writing":
        env["O1P_FAULT_POINT"] = f"save.{window}:iteration={iteration}"
    cmd = _train_cmd(qwen2_mcore, toy_data, run, "--train-iters", "6", "--save-interval", "2")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        if window == "writing":
            deadline = time.time() + 300
            while not pending.exists() and time.time() < deadline and proc.poll() is None:
                time.sleep(0.001)
        else:
            for line in proc.stdout:
                if "o1p test hook: paused" in line:
                    break
        assert proc.poll() is None, "the run ended before the kill"
    finally:
        _kill_job(proc)
        proc.stdout.close()
    tracker = run / "latest_checkpointed_iteration.txt"
    previous = iteration - 2
    assert tracker.read_text().strip() == str(previous) if previous else not tracker.exists()
    assert pending.is_dir() == (window != "renamed")  # killed inside the save, not after it
    assert (run / f"iter_{iteration:07d}").is_dir() == (window == "renamed")
    if previous:
        assert _weights(run).keys() == straight[2].keys()  # iteration 2 reads back whole

    resumed = _train(1, qwen2_mcore, toy_data, run, "--train-iters", "6", "--save-interval", "2")
    assert (f"at iteration {previous}/6" if previous else "training 6 iterations") in resumed.stdout
    assert _losses(resumed.stdout) == straight[1][previous:]
    weights = _weights(run)
    assert tracker.read_text().strip() == "6" and not list(run.glob(".*.tmp"))
    assert all(torch.equal(weights[k], straight[2][k]) for k in straight[2])


@pytest.mark.parametrize("loss", ["sft", "dpo"])
def test_baseline_losses_decrease(qwen2_mcore, tmp_path, loss):
    data = write_toy_dataset(tmp_path / "d.parquet", rows=4)
    proc = _train(1, qwen2_mcore, data, tmp_path / "run", "--loss", loss, "--train-iters", "8",
                  "--lr", "3e-3", "--lr-warmup-fraction", "0")  # fmt: skip
    losses = _losses(proc.stdout)
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.1, losses


def test_trained_checkpoint_converts_to_hf(straight, tmp_path):
    from transformers import AutoModelForCausalLM

    run_o1p("convert", "mcore-to-hf", "--mcore-dir", straight[0], "--out", tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    assert model.config.vocab_size == 1000


@pytest.mark.parametrize(
    "override, extra, message",
    [
        (dict(drop="ref_logprobs"), [], "run `o1p ref-logprobs` on it first"),
        (dict(prompt_ids=[5000, 1]), [], "the data was tokenized with another tokenizer"),
        (dict(advantage=float("nan")), [], "advantage is nan"),
        ({}, ["--global-batch-size", "3"], "must be a multiple of --micro-batch-size (2)"),
        ({}, ["--seq-length", "100000"], "exceeds the model's max positions"),
        (dict(rows=0), [], "has no rows"),
    ],
)
def test_bad_input_one_line(qwen2_mcore, tmp_path, override, extra, message):
    import pyarrow.parquet as pq

    override = dict(override)
    rows, drop = override.pop("rows", 16), override.pop("drop", None)
    data = write_toy_dataset(tmp_path / "d.parquet", rows=rows, **override)
    if drop:
        table = pq.read_table(data)
        pq.write_table(table.drop_columns([drop]), data)
    args = ["train", "--load", qwen2_mcore, "--data", data, "--save", tmp_path / "run", *COMMON,
            "--train-iters", "1", *extra]  # fmt: skip
    line = error_line(run_o1p(*args, check=False))
    assert message in line, line
    assert not (tmp_path / "run").exists()


def test_divergence_stops_with_one_line_naming_the_iteration(qwen2_mcore, toy_data, tmp_path):
    """--lr 1e30: the first update blows the weights up, so iteration 2's loss is NaN. The run
    stops there with one error line (no traceback) naming it, and saves nothing of iteration
    2: the checkpoint of iteration 1 stays the last one."""
    run = tmp_path / "run"
    diverging = ["--lr", "1e30", "--lr-warmup-fraction", "0", "--save-interval", "1"]
    args = ["--load", qwen2_mcore, "--data", toy_data, "--save", run, *COMMON, *diverging]
    proc = run_o1p("train", *args, "--train-iters", "4", check=False)
    line = error_line(proc)
    assert re.search(
        r"iteration 2: the (loss|gradient norm) is -?(nan|inf): training diverged", line
    )
    assert "lower --lr" in line
    assert len(_losses(proc.stdout)) == 1  # iteration 1 logged, iteration 2 stopped the run
    assert (run / "latest_checkpointed_iteration.txt").read_text().strip() == "1"
    assert not (run / "iter_0000002").exists()
