"""Tiny random Hugging Face models with locally trained tokenizers, for tests.

The builders here write ordinary HF checkpoint folders (``config.json``,
``generation_config.json``, ``model.safetensors`` and tokenizer files) holding very small,
randomly initialised models. They are the fixtures for the HF <-> Megatron-core conversion
tests: small enough to build in a few seconds on CPU, yet shaped like the real thing
(GQA, QKV bias for Qwen2, per-head q/k RMSNorm and a ``head_dim`` that is not hidden / heads
for Qwen3, tied/untied embeddings, a vocabulary size that is *not* a multiple of 128 so that
Megatron's vocab padding is exercised). Qwen2 and Qwen3 share one saver (``save_random_qwen``);
the tokenizers and chat templates live in ``tiny_tokenizers.py``.

Everything is offline and deterministic: tokenizers are trained on a built-in corpus with the
``tokenizers`` (byte-level BPE, Qwen2) and ``sentencepiece`` (BPE with byte fallback, Llama)
libraries, and weights are drawn from a ``torch.Generator`` seeded with ``seed``. RMSNorm
weights and QKV biases are random too, so a converter that maps norms or biases wrongly
produces visibly different logits.

Tested by every test that builds a model (tests/conftest.py) and tests/e2e/test_convert_cli.py.
"""

from __future__ import annotations

import os
import pathlib

import torch

from megatron_o1p.testing.tiny_tokenizers import (
    QWEN2_CHAT_TEMPLATE,
    QWEN2_SPECIAL_TOKENS,
    QWEN3_CHAT_TEMPLATE,
    QWEN3_THINK_TOKENS,
    save_llama_tokenizer,
    tiny_corpus,
    train_qwen_tokenizer,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = [
    "QWEN2_CHAT_TEMPLATE",
    "QWEN2_SPECIAL_TOKENS",
    "QWEN3_CHAT_TEMPLATE",
    "build_tiny_llama",
    "build_tiny_qwen2",
    "build_tiny_qwen3",
    "hf_forward_logits",
    "save_random_qwen",
    "save_random_qwen2",
    "tiny_corpus",
]


def _random_init_(model: torch.nn.Module, seed: int) -> None:
    """Re-initialises every parameter of ``model`` in place from a seeded generator.

    Matrices and embeddings get ``normal(0, 0.02)``; RMSNorm weights get ``1 + 0.1 * randn``
    and biases get ``0.1 * randn``.

    Args:
        model: The freshly constructed HF model (fp32).
        seed: Seed of the ``torch.Generator``.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():  # tied params are yielded once
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * noise)
            elif name.endswith("mlp.gate.weight"):
                # MoE router: logits far apart, so HF and megatron pick the same top k
                # (0.02 would leave near-ties that rounding can flip)
                param.copy_(0.5 * noise)
            elif name.endswith(".bias"):
                param.copy_(0.1 * noise)
            else:
                param.copy_(0.02 * noise)


def _save_model(
    model: torch.nn.Module,
    out_dir: pathlib.Path,
    dtype: torch.dtype,
    generation_kwargs: dict,
) -> None:
    """Saves ``model`` (cast to ``dtype``) and a generation config into ``out_dir``."""
    from transformers import GenerationConfig

    model = model.to(dtype)
    model.config.dtype = dtype
    model.generation_config = GenerationConfig(**generation_kwargs)
    model.save_pretrained(out_dir, safe_serialization=True)


def build_tiny_qwen2(
    out_dir: str | os.PathLike,
    *,
    vocab_size: int = 1000,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    tie_word_embeddings: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> pathlib.Path:
    """Builds a tiny random ``Qwen2ForCausalLM`` with a locally trained tokenizer.

    The tokenizer is a byte-level BPE (``tokenizer.json``) with exactly ``vocab_size`` tokens,
    the last three being ``<|endoftext|>`` (pad), ``<|im_start|>`` and ``<|im_end|>`` (eos),
    and carries the Qwen2 ChatML chat template. The model has QKV bias and GQA.

    Args:
        out_dir: Folder to write (created if needed).
        vocab_size: Tokenizer and model vocabulary size (1000 is deliberately not a multiple
            of 128). The built-in corpus supports roughly 260 to 2600.
        hidden_size: Model width.
        intermediate_size: MLP width.
        num_hidden_layers: Number of decoder layers.
        num_attention_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads (GQA).
        tie_word_embeddings: Whether ``lm_head`` shares the input embedding.
        seed: Seed for the weights.
        dtype: Dtype of the saved weights.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    tok = train_qwen_tokenizer(vocab_size)
    return save_random_qwen2(
        out_dir,
        tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=4096,
        rope_theta=1000000.0,
        tie_word_embeddings=tie_word_embeddings,
        seed=seed,
        dtype=dtype,
    )


def build_tiny_qwen3(
    out_dir: str | os.PathLike,
    *,
    vocab_size: int = 1000,
    hidden_size: int = 64,
    intermediate_size: int = 128,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    head_dim: int = 32,
    tie_word_embeddings: bool = True,
    seed: int = 2,
    dtype: torch.dtype = torch.float32,
) -> pathlib.Path:
    """Builds a tiny random ``Qwen3ForCausalLM`` with a locally trained tokenizer.

    Shaped like Qwen3 dense: no QKV bias, per-head RMSNorm on q and k (random weights), GQA,
    and an explicit ``head_dim`` (32 by default: not hidden / heads = 16, and one that vLLM's
    CPU attention serves, so the same model converts and samples). The tokenizer is the Qwen2
    one plus ``<think>`` / ``</think>`` as non-special added tokens, with a Qwen3-style chat
    template (thinking on unless ``enable_thinking=False`` is passed to it).

    Args:
        out_dir: Folder to write (created if needed).
        vocab_size: Tokenizer and model vocabulary size (not a multiple of 128 by default).
        hidden_size: Model width.
        intermediate_size: MLP width.
        num_hidden_layers: Number of decoder layers.
        num_attention_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads (GQA).
        head_dim: Per-head dimension.
        tie_word_embeddings: Whether ``lm_head`` shares the input embedding (Qwen3-0.6B to 4B
            tie, 8B and larger do not).
        seed: Seed for the weights.
        dtype: Dtype of the saved weights.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    return _save_qwen3(
        out_dir,
        "qwen3",
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        tie_word_embeddings=tie_word_embeddings,
        seed=seed,
        dtype=dtype,
    )


def _save_qwen3(out_dir, family: str, *, vocab_size: int, **shape) -> pathlib.Path:
    """A random Qwen3-family model (`family` "qwen3" or "qwen3_moe") with the Qwen3 tokenizer
    and chat template, RoPE theta 1e6 and 4096 positions."""
    tok = train_qwen_tokenizer(
        vocab_size, chat_template=QWEN3_CHAT_TEMPLATE, plain_tokens=QWEN3_THINK_TOKENS
    )
    return save_random_qwen(
        out_dir,
        tok,
        family=family,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        max_position_embeddings=4096,
        rope_theta=1000000.0,
        **shape,
    )


def build_tiny_qwen3_moe(
    out_dir: str | os.PathLike,
    *,
    num_experts: int = 8,
    num_experts_per_tok: int = 2,
    moe_intermediate_size: int = 32,
    norm_topk_prob: bool = True,
    num_hidden_layers: int = 2,
    seed: int = 4,
    **dense,
) -> pathlib.Path:
    """Builds a tiny random ``Qwen3MoeForCausalLM``: ``build_tiny_qwen3``'s attention,
    tokenizer and chat template (``dense`` overrides its sizes), every layer a mixture of
    ``num_experts`` experts with top-``num_experts_per_tok`` routing (untied, like the
    Qwen3-MoE releases). Router weights are drawn wide (``_random_init_``) so routing is
    decisive.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    shape = dict(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, tie_word_embeddings=False, dtype=torch.float32,
    )  # fmt: skip
    shape.update(dense)
    return _save_qwen3(
        out_dir,
        "qwen3_moe",
        num_hidden_layers=num_hidden_layers,
        num_experts=num_experts,
        num_experts_per_tok=num_experts_per_tok,
        moe_intermediate_size=moe_intermediate_size,
        norm_topk_prob=norm_topk_prob,
        decoder_sparse_step=1,
        mlp_only_layers=[],
        router_aux_loss_coef=0.001,
        seed=seed,
        **shape,
    )


def save_random_qwen2(out_dir: str | os.PathLike, tokenizer, **kwargs) -> pathlib.Path:
    """``save_random_qwen`` for a ``Qwen2ForCausalLM`` (used by the demo's base model)."""
    return save_random_qwen(out_dir, tokenizer, family="qwen2", **kwargs)


def save_random_qwen(
    out_dir: str | os.PathLike,
    tokenizer,
    *,
    family: str,
    eos_token: str,
    pad_token: str,
    rope_theta: float,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    reinitialize: bool = True,
    **shape,
) -> pathlib.Path:
    """Saves a random Qwen2 or Qwen3 causal LM sized for ``tokenizer``, and the tokenizer, as HF.

    The model's vocabulary is ``len(tokenizer)``; ``pad_token`` doubles as BOS (Qwen has no
    BOS of its own). RMSNorm eps is 1e-6, no sliding window. Used by ``build_tiny_qwen2``,
    ``build_tiny_qwen3`` and the demo's base model (``demo/task.py``).

    Args:
        out_dir: Folder to write (created if needed).
        tokenizer: A ``transformers`` tokenizer; saved beside the model.
        family: "qwen2" (qkv bias) or "qwen3" (q/k norms, explicit head_dim).
        eos_token: The token that ends a response (generation config and model config).
        pad_token: The padding token, also used as BOS.
        rope_theta: RoPE base.
        seed: Seed for the weights.
        dtype: Dtype of the saved weights.
        reinitialize: Redraw every parameter with ``_random_init_`` (random norms and biases,
            so converter bugs show); False keeps transformers' own initialisation, drawn
            under ``seed``.
        **shape: config sizes: hidden_size, intermediate_size, num_hidden_layers,
            num_attention_heads, num_key_value_heads, max_position_embeddings,
            tie_word_embeddings, and (Qwen3) head_dim.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    import transformers

    config_cls, model_cls = (getattr(transformers, name) for name in _QWEN_CLASSES[family])
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(pad_token),
        "eos_token_id": tokenizer.convert_tokens_to_ids(eos_token),
        "pad_token_id": tokenizer.convert_tokens_to_ids(pad_token),
    }
    config = config_cls(
        vocab_size=len(tokenizer),
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
        use_sliding_window=False,
        **ids,
        **shape,
    )
    with torch.random.fork_rng(devices=[]):  # keep the caller's global RNG untouched
        torch.manual_seed(seed)
        model = model_cls(config)
    if reinitialize:
        _random_init_(model, seed)
    _save_model(model, out_dir, dtype, ids)
    tokenizer.save_pretrained(out_dir)
    return out_dir


_QWEN_CLASSES = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM"),
}
"""family -> (config class, model class) names in ``transformers``."""


def build_tiny_llama(
    out_dir: str | os.PathLike,
    *,
    vocab_size: int = 1003,
    hidden_size: int = 64,
    intermediate_size: int = 160,
    num_hidden_layers: int = 4,
    num_attention_heads: int = 8,
    num_key_value_heads: int = 2,
    tie_word_embeddings: bool = False,
    rope_theta: float = 500000.0,
    rms_norm_eps: float = 1e-5,
    seed: int = 1,
    dtype: torch.dtype = torch.float32,
) -> pathlib.Path:
    """Builds a tiny random ``LlamaForCausalLM`` with a locally trained SentencePiece tokenizer.

    The folder holds the SentencePiece ``tokenizer.model`` itself (BPE, byte fallback,
    ``<unk>``=0, ``<s>``=1, ``</s>``=2, no pad) plus the ``tokenizer.json`` that transformers
    derives from it. The model is untied by default, uses GQA and has no attention bias.

    Args:
        out_dir: Folder to write (created if needed).
        vocab_size: Tokenizer and model vocabulary size (1003 is not a multiple of 128). Must
            leave room for the 256 byte-fallback pieces and the corpus characters (>= ~350).
        hidden_size: Model width.
        intermediate_size: MLP width.
        num_hidden_layers: Number of decoder layers.
        num_attention_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads (GQA).
        tie_word_embeddings: Whether ``lm_head`` shares the input embedding.
        rope_theta: RoPE base.
        rms_norm_eps: RMSNorm epsilon.
        seed: Seed for the weights.
        dtype: Dtype of the saved weights.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_llama_tokenizer(out_dir, vocab_size)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=4096,
        rms_norm_eps=rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
        tie_word_embeddings=tie_word_embeddings,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):  # keep the caller's global RNG untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)  # its own init is overwritten just below
    _random_init_(model, seed)
    _save_model(model, out_dir, dtype, {"bos_token_id": 1, "eos_token_id": 2})
    return out_dir


def hf_forward_logits(hf_dir: str | os.PathLike, input_ids: torch.Tensor) -> torch.Tensor:
    """Runs the HF model in ``hf_dir`` (fp32, eval, eager attention) on a token batch.

    Args:
        hf_dir: HF checkpoint folder.
        input_ids: ``LongTensor`` of shape ``[B, T]``.

    Returns:
        fp32 logits of shape ``[B, T, V]`` (V = ``config.vocab_size``).
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    with torch.no_grad():
        out = model(input_ids=input_ids.long(), use_cache=False)
    return out.logits.float()
