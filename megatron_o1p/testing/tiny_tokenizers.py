"""Locally trained tokenizers and chat templates of the tiny test models (`tiny_models.py`).

Offline and deterministic: every tokenizer is trained on `tiny_corpus`, a built-in,
math-flavoured corpus. Qwen2 and Qwen3 share one byte-level BPE trainer (``tokenizers``, with
Qwen2's pre-tokenisation regex) and differ only in the added tokens and the chat template:
Qwen3 adds ``<think>`` / ``</think>`` as ordinary (non-special) added tokens, as the real
Qwen3 tokenizer does, so they survive decoding with ``skip_special_tokens`` and the grader can
find the end of the thinking. Llama gets a SentencePiece BPE with byte fallback.

Tested by tests/unit/data/test_prompts.py (the Qwen3 template and its thinking switch) and
every test that builds a tiny model (tests/conftest.py, tests/e2e/test_convert_cli.py).
"""

from __future__ import annotations

import io
import json
import pathlib
import random
import tempfile

#: Special tokens of the tiny Qwen2/Qwen3 tokenizers, appended after the BPE vocabulary.
QWEN2_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

#: Qwen3's thinking delimiters: added tokens that are NOT special (as in Qwen3's tokenizer).
QWEN3_THINK_TOKENS = ("<think>", "</think>")

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

#: Qwen3's chat template without tool calls: no default system prompt, earlier assistant turns
#: keep only the text after their ``</think>``, and the generation prompt opens the assistant
#: turn; ``enable_thinking=False`` (an `apply_chat_template` argument) pre-fills an empty
#: thinking block, so the model answers directly. Thinking is on when the argument is absent.
QWEN3_CHAT_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
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


def train_qwen_tokenizer(
    vocab_size: int,
    *,
    chat_template: str = QWEN2_CHAT_TEMPLATE,
    special_tokens: tuple[str, ...] = QWEN2_SPECIAL_TOKENS,
    plain_tokens: tuple[str, ...] = (),
):
    """Trains a Qwen-style byte-level BPE tokenizer with exactly ``vocab_size`` tokens.

    The BPE vocabulary comes first, then ``special_tokens`` (as in Qwen2: ``<|endoftext|>``
    pad, ``<|im_start|>``, ``<|im_end|>`` eos), then ``plain_tokens``: added tokens that are
    matched whole but are not special (Qwen3's ``<think>``, ``</think>``).

    Args:
        vocab_size: Total tokens. The built-in corpus supports roughly 260 to 2600.
        chat_template: The tokenizer's chat template.
        special_tokens: Special added tokens (skipped when decoding with
            ``skip_special_tokens``).
        plain_tokens: Non-special added tokens (kept when decoding).

    Returns:
        A ``transformers.Qwen2Tokenizer`` (Qwen3 uses the same class).
    """
    from transformers import Qwen2Tokenizer

    added = (*special_tokens, *plain_tokens)
    vocab, merges = _train_byte_level_bpe(vocab_size - len(added))
    for token in added:  # ids after the BPE vocab, in order
        vocab[token] = len(vocab)
    hf_tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(special_tokens),
        model_max_length=32768,
    )
    if plain_tokens:
        hf_tok.add_tokens(list(plain_tokens), special_tokens=False)
    hf_tok.chat_template = chat_template
    if len(hf_tok) != vocab_size:
        raise RuntimeError(f"Qwen tokenizer has {len(hf_tok)} tokens, wanted {vocab_size}")
    return hf_tok


def _train_byte_level_bpe(bpe_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE with exactly ``bpe_size`` tokens (no specials)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    if bpe_size < 257:
        raise ValueError(f"the BPE needs more than 256 tokens (the bytes), got {bpe_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN2_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    bpe = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in bpe["merges"]]
    if len(bpe["vocab"]) != bpe_size:
        raise RuntimeError(
            f"BPE trainer produced {len(bpe['vocab'])} tokens, wanted {bpe_size}; "
            "the built-in corpus is too small for this vocab_size"
        )
    return bpe["vocab"], merges


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


def save_llama_tokenizer(out_dir: pathlib.Path, vocab_size: int) -> None:
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
