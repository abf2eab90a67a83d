"""Shared fixtures: tiny HF models with locally trained tokenizers, and their conversions.

Everything is built once per session under pytest's tmp dir; nothing touches the network.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers.run import run_o1p  # noqa: E402


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory):
    """Qwen2: qkv bias, tied embeddings, GQA 4/2, vocab 1000 (not a multiple of 128)."""
    from megatron_o1p.testing.tiny_models import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("hf") / "qwen2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """Llama: untied, GQA 8/2, SentencePiece tokenizer.model, vocab 1003."""
    from megatron_o1p.testing.tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("hf") / "llama")


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory):
    """Qwen3: q/k norms, no bias, tied, GQA 4/2, head_dim 32 != hidden 64 / 4 heads (vLLM's
    CPU attention serves head_dim 32, so this one model converts and samples)."""
    from megatron_o1p.testing.tiny_models import build_tiny_qwen3

    return build_tiny_qwen3(tmp_path_factory.mktemp("hf") / "qwen3")


@pytest.fixture(scope="session")
def tiny_qwen3_untied(tmp_path_factory):
    """Qwen3 with an lm_head of its own (as Qwen3-8B and larger)."""
    from megatron_o1p.testing.tiny_models import build_tiny_qwen3

    return build_tiny_qwen3(
        tmp_path_factory.mktemp("hf") / "qwen3_untied", tie_word_embeddings=False, seed=3
    )


@pytest.fixture(scope="session")
def tiny_qwen3_moe(tmp_path_factory):
    """Qwen3-MoE: Qwen3's attention, 2 layers of 8 experts each, top-2 renormalised, untied."""
    from megatron_o1p.testing.tiny_models import build_tiny_qwen3_moe

    return build_tiny_qwen3_moe(tmp_path_factory.mktemp("hf") / "qwen3_moe")


@pytest.fixture(scope="session")
def vllm_tiny_qwen2(tmp_path_factory):
    """Qwen2 that vLLM's CPU attention accepts (head_dim 64: hidden 128, 2 heads)."""
    from megatron_o1p.testing.tiny_models import build_tiny_qwen2

    return build_tiny_qwen2(
        tmp_path_factory.mktemp("vllm") / "qwen2",
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )


@pytest.fixture(scope="session")
def qwen2_mcore(tiny_qwen2, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcore") / "qwen2"
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen2, "--out", out, "--spec", "local")
    return out


@pytest.fixture(scope="session")
def qwen3_mcore(tiny_qwen3, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcore") / "qwen3"
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen3, "--out", out, "--spec", "local")
    return out


@pytest.fixture(scope="session")
def qwen3_untied_mcore(tiny_qwen3_untied, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcore") / "qwen3_untied"
    # Recorded as the TE spec, like llama_mcore: it must load into the local spec too.
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen3_untied, "--out", out, "--spec", "te")
    return out


@pytest.fixture(scope="session")
def llama_mcore(tiny_llama, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcore") / "llama"
    # Recorded as the TE spec: it must still load into the local spec used on the CPU.
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_llama, "--out", out, "--spec", "te")
    return out


@pytest.fixture(scope="session")
def qwen3_moe_mcore(tiny_qwen3_moe, tmp_path_factory):
    out = tmp_path_factory.mktemp("mcore") / "qwen3_moe"
    # The local spec's sequential experts: the key layout both specs load
    run_o1p("convert", "hf-to-mcore", "--hf-dir", tiny_qwen3_moe, "--out", out, "--spec", "local")
    return out
