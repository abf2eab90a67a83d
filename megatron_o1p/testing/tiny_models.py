"""Tiny random Hugging Face models with locally trained tokenizers, for tests.

The builders here write ordinary HF checkpoint folders (``config.json``,
``generation_config.json``, ``model.safetensors`` and tokenizer files) holding very small,
randomly initialised models. They are the fixtures for the HF <-> Megatron-core conversion
tests: small enough to build in a few seconds on CPU, yet shaped like the real thing
(GQA, QKV bias for Qwen2, tied/untied embeddings, a vocabulary size that is *not* a multiple
of 128 so that Megatron's vocab padding is exercised).

Everything is offline and deterministic: tokenizers are trained on a built-in corpus with the
``tokenizers`` (byte-level BPE, Qwen2) and ``sentencepiece`` (BPE with byte fallback, Llama)
libraries, and weights are drawn from a ``torch.Generator`` seeded with ``seed``. RMSNorm
weights and QKV biases are random too, so a converter that maps norms or biases wrongly
produces visibly different logits.

Tested by every test that builds a model (tests/conftest.py) and tests/e2e/test_convert_cli.py.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import random
import tempfile

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = [
    "QWEN2_CHAT_TEMPLATE",
    "QWEN2_SPECIAL_TOKENS",
    "build_tiny_llama",
    "build_tiny_qwen2",
    "hf_forward_logits",
    "save_random_qwen2",
    "tiny_corpus",
]

#: Special tokens of the tiny Qwen2 tokenizer, appended after the BPE vocabulary (as in Qwen2).
QWEN2_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

#: The Qwen2-Instruct ChatML template (default system prompt when none is given).
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Qwen2's pre-tokenisation regex (same as transformers' Qwen2Tokenizer), so that the trained
# tokenizer behaves identically whether it is loaded from tokenizer.json as-is or rebuilt by
# Qwen2Tokenizer from its vocab/merges.
_QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there one all we can has their been if more when will "
    "would who so no what up out about than into them some could time only other new these two "
    "may first then do any like my now over such our man me even most made after also did many "
    "before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here "
    "between both life being under never day same another know while last might us great old "
    "year off come since against go came right used take three answer question solve sum total "
    "number numbers equal equals plus minus times divide divided product quotient remainder "
    "step steps first second third therefore thus hence result final compute calculate add "
    "subtract multiply fraction half quarter percent average value values problem simple apples "
    "oranges books pencils students teacher class school buys sells costs dollars cents price "
    "each every more less left remaining altogether how many much think reason check verify "
    "let suppose assume given find show prove integer even odd prime square root power "
    "system user assistant helpful you are a reasoning please put your within boxed"
).split()

_SYLLABLES = (
    "ka ri to me lu sa no vi de ra po ne ti ku ma zo fe la mi su ro ba ge hu ji "
    "ko pa qu re si ta ul ve wo xe ya ze an en in on un ar er ir or ur al el il ol"
).split()


def tiny_corpus(num_lines: int = 4000, seed: int = 1234) -> list[str]:
    """Returns a deterministic, math-flavoured training corpus for the tiny tokenizers.

    The corpus mixes arithmetic lines (``"12+34=46"``), short word problems, English words and
    deterministic pseudo-words (so the BPE trainers always have enough merge candidates to
    reach the requested vocabulary size).

    Args:
        num_lines: Number of lines to generate.
        seed: Seed of the ``random.Random`` used to generate the corpus.

    Returns:
        The corpus, one string per line.
    """
    rng = random.Random(seed)
    pseudo = sorted(
        {"".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(600)}
    )
    ops = [("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b)]
    lines = []
    for i in range(num_lines):
        kind = i % 6
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        sym, fn = rng.choice(ops)
        if kind == 0:
            lines.append(f"{a}{sym}{b}={fn(a, b)}")
        elif kind == 1:
            lines.append(f"Question: what is {a} {sym} {b}? Answer: {fn(a, b)}.")
        elif kind == 2:
            words = rng.sample(_WORDS, 8)
            lines.append(" ".join(words).capitalize() + ".")
        elif kind == 3:
            words = rng.sample(pseudo, 6)
            lines.append(" ".join(words) + f" {a}/{b}={a // b} r {a % b}")
        elif kind == 4:
            lines.append(
                f"system\nYou are a helpful assistant.\nuser\nWhat is {a}+{b}?\n"
                f"assistant\n{a}+{b}={a + b}\n"
            )
        else:
            w1, w2 = rng.sample(_WORDS, 2)
            lines.append(
                f"Step {i % 9 + 1}: {w1} {a} {w2} {b}, so the total is {a + b}. "
                f"The answer is \\boxed{{{a + b}}}."
            )
    return lines


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


def _train_qwen2_tokenizer(vocab_size: int):
    """Trains a Qwen2-style byte-level BPE tokenizer with exactly ``vocab_size`` tokens.

    Returns:
        A ``transformers.Qwen2Tokenizer`` with the ChatML template set.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import Qwen2Tokenizer

    n_special = len(QWEN2_SPECIAL_TOKENS)
    if vocab_size < 256 + n_special + 1:
        raise ValueError(f"vocab_size must be > {256 + n_special}, got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - n_special,  # specials are appended after the BPE vocab
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    bpe = json.loads(tok.to_str())["model"]
    vocab = bpe["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    if len(vocab) != vocab_size - n_special:
        raise RuntimeError(
            f"BPE trainer produced {len(vocab)} tokens, wanted {vocab_size - n_special}; "
            "the built-in corpus is too small for this vocab_size"
        )
    for special in QWEN2_SPECIAL_TOKENS:  # ids vocab_size-3 .. vocab_size-1, as in Qwen2
        vocab[special] = len(vocab)
    hf_tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN2_SPECIAL_TOKENS),
        model_max_length=32768,
    )
    hf_tok.chat_template = QWEN2_CHAT_TEMPLATE
    if len(hf_tok) != vocab_size:
        raise RuntimeError(f"Qwen2 tokenizer has {len(hf_tok)} tokens, wanted {vocab_size}")
    return hf_tok


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
    tok = _train_qwen2_tokenizer(vocab_size)
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


def save_random_qwen2(
    out_dir: str | os.PathLike,
    tokenizer,
    *,
    eos_token: str,
    pad_token: str,
    rope_theta: float,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    reinitialize: bool = True,
    **shape,
) -> pathlib.Path:
    """Saves a random ``Qwen2ForCausalLM`` sized for ``tokenizer``, and the tokenizer, as HF.

    The model's vocabulary is ``len(tokenizer)``; ``pad_token`` doubles as BOS (Qwen2 has no
    BOS of its own). RMSNorm eps is 1e-6, no sliding window. Used by ``build_tiny_qwen2`` and
    by the demo's base model (``demo/task.py``), which only differ in tokenizer and shape.

    Args:
        out_dir: Folder to write (created if needed).
        tokenizer: A ``transformers`` tokenizer; saved beside the model.
        eos_token: The token that ends a response (generation config and model config).
        pad_token: The padding token, also used as BOS.
        rope_theta: RoPE base.
        seed: Seed for the weights.
        dtype: Dtype of the saved weights.
        reinitialize: Redraw every parameter with ``_random_init_`` (random norms and biases,
            so converter bugs show); False keeps transformers' own initialisation, drawn
            under ``seed``.
        **shape: ``Qwen2Config`` sizes: hidden_size, intermediate_size, num_hidden_layers,
            num_attention_heads, num_key_value_heads, max_position_embeddings,
            tie_word_embeddings.

    Returns:
        ``out_dir`` as a ``pathlib.Path``.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(pad_token),
        "eos_token_id": tokenizer.convert_tokens_to_ids(eos_token),
        "pad_token_id": tokenizer.convert_tokens_to_ids(pad_token),
    }
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
        use_sliding_window=False,
        **ids,
        **shape,
    )
    with torch.random.fork_rng(devices=[]):  # keep the caller's global RNG untouched
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    if reinitialize:
        _random_init_(model, seed)
    _save_model(model, out_dir, dtype, ids)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _train_llama_sentencepiece(vocab_size: int) -> bytes:
    """Trains a Llama-2-style SentencePiece BPE model (byte fallback, split digits).

    Returns:
        The serialized ``tokenizer.model`` bytes.
    """
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tiny_corpus()),
        model_writer=buf,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        shuffle_input_sentence=False,
        hard_vocab_limit=True,
        minloglevel=2,
    )
    return buf.getvalue()


def _save_llama_tokenizer(out_dir: pathlib.Path, vocab_size: int) -> None:
    """Trains the SentencePiece model and saves it with its HF tokenizer files in ``out_dir``."""
    from transformers import LlamaTokenizer

    sp_bytes = _train_llama_sentencepiece(vocab_size)
    # Build the HF tokenizer from a folder holding only tokenizer.model: that is the route on
    # which transformers 5 converts the SentencePiece proto (LlamaTokenizer(vocab_file=...)
    # silently yields an empty vocab).
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "tokenizer.model").write_bytes(sp_bytes)
        # add_bos_token must be explicit: transformers 5 defaults it to False here, unlike the
        # real Llama tokenizers (whose tokenizer_config.json sets it).
        tok = LlamaTokenizer.from_pretrained(
            tmp, add_bos_token=True, add_eos_token=False, model_max_length=4096
        )
        if len(tok) != vocab_size:
            raise RuntimeError(f"Llama tokenizer has {len(tok)} tokens, wanted {vocab_size}")
        tok.save_pretrained(out_dir)
    (out_dir / "tokenizer.model").write_bytes(sp_bytes)


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
    _save_llama_tokenizer(out_dir, vocab_size)
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
