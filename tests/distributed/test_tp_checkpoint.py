"""Megatron TP=2 logits == TP=1 logits, and a checkpoint saved at TP=2 loads at TP=1 (megatron's
resharding load) and converts to HF (chunks assembled by offset)."""

import re
import sys

import pytest
import torch

from tests.helpers.run import REPO, run_o1p, run_torchrun

WORKER = REPO / "tests" / "distributed" / "workers" / "tp_save_load.py"
pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def tp2_run(tiny_qwen2, tmp_path_factory):
    work = tmp_path_factory.mktemp("tp2")
    run_torchrun(2, WORKER, "save", tiny_qwen2, work, module=False)
    return work


def test_tp2_equals_tp1_and_tp2_checkpoint_loads_at_tp1(tp2_run, tiny_qwen2):
    import subprocess

    from tests.helpers.run import _env

    proc = subprocess.run(
        [sys.executable, str(WORKER), "load", str(tiny_qwen2), str(tp2_run)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = dict(re.findall(r"(\w+)=([0-9.e+-]+)", proc.stdout))
    assert float(found["tp1_vs_tp2"]) < 1e-5
    assert float(found["before_load"]) > 1e-3  # the other seed really is another model
    assert float(found["after_load"]) < 1e-5
    assert (tp2_run / "ckpt" / "latest_checkpointed_iteration.txt").read_text().strip() == "5"
    # megatron-core 0.16.1 cannot load a checkpoint without it (0.19 stops writing it)
    assert (tp2_run / "ckpt" / "iter_0000005" / "common.pt").is_file()


def test_tp2_training_checkpoint_converts_to_hf(tp2_run, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    run_o1p("convert", "mcore-to-hf", "--mcore-dir", tp2_run / "ckpt", "--out", out)
    model = AutoModelForCausalLM.from_pretrained(
        out, dtype=torch.float32, attn_implementation="eager"
    )
    tokens = torch.randint(
        0, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        hf_logits = model(input_ids=tokens).logits
    reference = torch.load(tp2_run / "logits_tp2.pt", weights_only=True)[
        ..., : model.config.vocab_size
    ]
    assert (hf_logits - reference).abs().max().item() < 1e-4
