"""`o1p convert` as a subprocess: bitwise round trips, tokenizers, sharding, and one-line errors
for bad input that never leave a half-written output behind."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.helpers.run import error_line, run_o1p


def _tensors(hf_dir):
    out = {}
    for path in sorted(hf_dir.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def _no_leftovers(parent, name):
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.mark.parametrize("model", ["tiny_qwen2", "tiny_llama", "tiny_qwen3", "tiny_qwen3_untied"])
def test_round_trip_is_bitwise(model, request, tmp_path):
    hf_dir = request.getfixturevalue(model)
    run_o1p("convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", tmp_path / "m")
    run_o1p("convert", "mcore-to-hf", "--mcore-dir", tmp_path / "m", "--out", tmp_path / "h")
    original, back = _tensors(hf_dir), _tensors(tmp_path / "h")
    assert original.keys() == back.keys()
    for name, tensor in original.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor), name
    for side in hf_dir.iterdir():
        if side.suffix != ".safetensors":
            assert (tmp_path / "h" / side.name).read_bytes() == side.read_bytes(), side.name
    meta = json.loads((tmp_path / "m" / "o1p_checkpoint.json").read_text())
    assert meta["padded_vocab_size"] == 1024 and meta["architecture"]["vocab_size"] in (1000, 1003)


def test_tokenizers_load_after_conversion(tiny_qwen2, tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    assert (tiny_llama / "tokenizer.model").is_file() and (tiny_qwen2 / "tokenizer.json").is_file()
    for hf_dir in (tiny_qwen2, tiny_llama):
        out = tmp_path / hf_dir.name
        run_o1p("convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", out / "m")
        run_o1p("convert", "mcore-to-hf", "--mcore-dir", out / "m", "--out", out / "h")
        text = "Solve 12+34 = \\boxed{46}"
        before = AutoTokenizer.from_pretrained(hf_dir)(text)["input_ids"]
        assert AutoTokenizer.from_pretrained(out / "h")(text)["input_ids"] == before
        assert AutoTokenizer.from_pretrained(out / "m" / "hf")(text)["input_ids"] == before


def test_sharded_output_loads_in_transformers(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_llama, "--out", tmp_path / "m")
    run_o1p(
        "convert",
        "mcore-to-hf",
        "--mcore-dir",
        tmp_path / "m",
        "--out",
        tmp_path / "h",
        "--max-shard-size",
        "100KB",
    )
    index = json.loads((tmp_path / "h" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    tokens = torch.randint(0, 1003, (1, 16), generator=torch.Generator().manual_seed(0))
    logits = [
        AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)(input_ids=tokens).logits
        for d in (tiny_llama, tmp_path / "h")
    ]
    assert torch.equal(logits[0], logits[1])


def test_bin_weights_refused_unless_allowed(tiny_qwen2, tmp_path):
    hf_dir = tmp_path / "bin_model"
    shutil.copytree(tiny_qwen2, hf_dir)
    torch.save(load_file(hf_dir / "model.safetensors"), hf_dir / "pytorch_model.bin")
    (hf_dir / "model.safetensors").unlink()
    proc = run_o1p(
        "convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", tmp_path / "m", check=False
    )
    assert "pass --allow-bin-weights" in error_line(proc)
    _no_leftovers(tmp_path, "m")
    run_o1p(
        "convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", tmp_path / "m", "--allow-bin-weights"
    )
    run_o1p("convert", "mcore-to-hf", "--mcore-dir", tmp_path / "m", "--out", tmp_path / "h")
    original, back = _tensors(tiny_qwen2), _tensors(tmp_path / "h")
    assert original.keys() == back.keys()
    assert all(torch.equal(original[k], back[k]) for k in original)


@pytest.fixture()
def broken_copy(tiny_qwen2, tmp_path):
    hf_dir = tmp_path / "broken"
    shutil.copytree(tiny_qwen2, hf_dir)
    return hf_dir


def _convert_error(hf_dir, out, *extra):
    proc = run_o1p("convert", "hf-to-mcore", "--hf-dir", hf_dir, "--out", out, *extra, check=False)
    line = error_line(proc)
    _no_leftovers(out.parent, out.name)
    return line


def test_missing_config(broken_copy, tmp_path):
    (broken_copy / "config.json").unlink()
    assert "config.json: not found" in _convert_error(broken_copy, tmp_path / "m")


def test_missing_weights(broken_copy, tmp_path):
    (broken_copy / "model.safetensors").unlink()
    assert "no model weights" in _convert_error(broken_copy, tmp_path / "m")


def test_missing_tokenizer(broken_copy, tmp_path):
    (broken_copy / "tokenizer.json").unlink()
    assert "no tokenizer" in _convert_error(broken_copy, tmp_path / "m")


def test_config_disagrees_with_weights(broken_copy, tmp_path):
    config = json.loads((broken_copy / "config.json").read_text())
    config["intermediate_size"] = 96
    (broken_copy / "config.json").write_text(json.dumps(config))
    assert "config and weights disagree" in _convert_error(broken_copy, tmp_path / "m")


def test_missing_tensor(broken_copy, tmp_path):
    tensors = load_file(broken_copy / "model.safetensors")
    del tensors["model.layers.2.mlp.up_proj.weight"]
    save_file(tensors, broken_copy / "model.safetensors")
    line = _convert_error(broken_copy, tmp_path / "m")
    assert "tensor model.layers.2.mlp.up_proj.weight missing" in line


def test_truncated_weights_leave_no_output(broken_copy, tmp_path):
    data = (broken_copy / "model.safetensors").read_bytes()
    (broken_copy / "model.safetensors").write_bytes(data[: len(data) - 5000])
    assert "model.safetensors: truncated" in _convert_error(broken_copy, tmp_path / "m")


@pytest.mark.parametrize(
    "tp, message",
    [
        (3, "num_attention_heads (4) must be a multiple of tensor_model_parallel_size (3)"),
        (4, "num_key_value_heads (2) must be a multiple of tensor_model_parallel_size (4)"),
    ],
)
def test_tensor_parallel_that_does_not_divide_heads(tiny_qwen2, tmp_path, tp, message):
    line = _convert_error(tiny_qwen2, tmp_path / "m", "--tensor-model-parallel-size", str(tp))
    assert message in line


def test_existing_output_is_kept(qwen2_mcore, tiny_qwen2, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    proc = run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen2, "--out", out, check=False)
    assert "already exists; pass --overwrite" in error_line(proc)
    assert (out / "precious.txt").read_text() == "keep"
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen2, "--out", out, "--overwrite")
    assert not (out / "precious.txt").exists() and (out / "o1p_checkpoint.json").is_file()


def test_verify_refuses_mismatched_config(qwen2_mcore, tiny_llama):
    proc = run_o1p(
        "convert", "verify", "--hf-dir", tiny_llama, "--mcore-dir", qwen2_mcore, check=False
    )
    line = error_line(proc)
    assert (
        "does not match checkpoint" in line and "model_type: hf='llama' checkpoint='qwen2'" in line
    )


def test_mcore_to_hf_needs_a_checkpoint(tiny_qwen2, tmp_path):
    proc = run_o1p(
        "convert", "mcore-to-hf", "--mcore-dir", tiny_qwen2, "--out", tmp_path / "h", check=False
    )
    assert "o1p_checkpoint.json: not found" in error_line(proc)
    _no_leftovers(tmp_path, "h")


def test_incomplete_checkpoint_is_refused(qwen2_mcore, tmp_path):
    ckpt = tmp_path / "m"
    shutil.copytree(qwen2_mcore, ckpt)
    (ckpt / "release" / "metadata.json").unlink()
    proc = run_o1p(
        "convert", "mcore-to-hf", "--mcore-dir", ckpt, "--out", tmp_path / "h", check=False
    )
    assert "incomplete megatron checkpoint" in error_line(proc)


def test_tools_script_and_help(tmp_path):
    import subprocess
    import sys

    from tests.helpers.run import REPO, _env

    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "convert_checkpoint.py"), "--help"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.returncode == 0 and "hf-to-mcore" in proc.stdout and "verify" in proc.stdout
    assert "convert" in run_o1p("--help").stdout


@pytest.mark.parametrize(
    "override, words",
    [
        (
            dict(
                model_type="qwen3_moe", num_experts=8, moe_intermediate_size=32, mlp_only_layers=[1]
            ),
            "unsupported mlp_only_layers=[1]: every layer must be a mixture of experts",
        ),
        (
            dict(model_type="qwen3_5_text", layer_types=["linear_attention"] * 4),
            "unsupported model_type='qwen3_5_text': Qwen3.5: hybrid linear attention",
        ),
        (dict(model_type="gpt_oss"), "unsupported model_type='gpt_oss': gpt-oss"),
        (dict(model_type="deepseek_v3", kv_lora_rank=16), "multi-head latent attention (MLA)"),
        (dict(use_sliding_window=True, sliding_window=16), "unsupported use_sliding_window=True"),
        (dict(head_dim=16), "config and weights disagree"),
    ],
    ids=[
        "qwen3-moe-dense-layers",
        "qwen3.5",
        "gpt-oss",
        "deepseek-mla",
        "sliding-window",
        "head-dim",
    ],
)
def test_qwen3_relatives_are_refused_in_one_line(tiny_qwen3, tmp_path, override, words):
    hf_dir = tmp_path / "hf"
    shutil.copytree(tiny_qwen3, hf_dir)
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**config, **override}))
    assert words in _convert_error(hf_dir, tmp_path / "m")
