"""The demo's synthetic task: long-thought addition with a real length/accuracy trade-off.

A problem adds two numbers of `digits` digits (2-5 by default; difficulty = digits), written
the way small transformers learn arithmetic fastest: column by column, least significant digit
first (little-endian, as in the arithmetic-transformer literature). 12345 + 67890 is

    5+0,4+9,3+8,2+7,1+6=          and its answer, 80235, is written 53208

A "long-thought" response, as the base model's SFT data spells it:

    5+0+0=05,4+9+0=13,3+8+0=11,2+7+0=09,1+6+0=07=53197;
    chk:5+0+0=05,4+9+0=13,3+8+1=12,2+7+1=10,1+6+1=08=53208 fix;\\boxed{53208}

(one line in reality; split here)

- a first pass: per column `x+y+c=CS` (the digits, the carry in, the two-digit column sum),
  then its result (the S digits, little-endian);
- then 0-2 checks, each the same working done again, ending in its result and ` ok;` (it
  agrees with what came before) or ` fix;` (it does not, and replaces it);
- then the answer in `\\boxed{}` (the last result) and the end-of-sequence token.

Two ingredients give the paper's length disharmony (section 3) by construction:
- the number of checks is drawn independently of the problem, so wherever the first pass is
  right, every check is pure waste;
- the first pass makes a systematic slip: from the third column on it drops the carry (writes
  `+0`). Two-digit problems never hit it; longer ones do whenever a carry reaches the third
  column or beyond (about half of the 3-digit and most of the 5-digit ones). Only a check
  catches it, so there a trace without a check is wrong; and the slip is deterministic, so the
  model repeats it under greedy decoding too. Blind shortening costs accuracy on exactly those
  items, so the accuracy term of R_LH has work to do.

Sums ending in 0 are not drawn: their little-endian form starts with 0, and a grader that
compares numbers would accept the answer without its leading zeros.

The tokenizer is character-level plus a few multi-character tokens (`chk:`, ` ok;`,
` fix;`, `\\boxed{`), an HF fast tokenizer (`tokenizer.json`) with a chat template that
renders only the user's text, so `o1p sample`/`o1p evaluate` prompt with exactly the problem.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

EOS, PAD, UNK = "</s>", "<pad>", "<unk>"
WORDS = ("chk:", " ok;", " fix;", "\\boxed{")
CHARS = tuple("0123456789+=,;:}")
#: Renders the last user turn verbatim (system prompts and speed suffixes are not part of
#: this toy language; the tiny model never saw them).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ message['content'] }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class TaskConfig:
    min_digits: int = 2
    max_digits: int = 5
    check_probs: tuple[float, ...] = (0.35, 0.15, 0.5)
    """P(0, 1, 2 checks), the same for every problem. Most traces check (0.65), and most of
    those check twice (0.5/0.65), so the base model's greedy answer checks twice everywhere."""
    careless_from_column: int = 2
    """The first pass drops carries into this column (0 = least significant) and beyond."""


def little_endian(value: int, digits: int) -> str:
    return str(value).zfill(digits)[::-1]


def make_problems(n: int, cfg: TaskConfig, seed: int) -> list[dict]:
    """`n` problems, digits spread evenly over the range; ids are unique per seed."""
    rng = random.Random(seed)
    rows = []
    span = cfg.max_digits - cfg.min_digits + 1
    for i in range(n):
        digits = cfg.min_digits + i % span
        low, high = 10 ** (digits - 1), 10**digits - 1
        a, b = rng.randint(low, high), rng.randint(low, high)
        while (a + b) % 10 == 0:
            b = rng.randint(low, high)
        columns = zip(little_endian(a, digits), little_endian(b, digits))
        rows.append(
            {
                "id": f"s{seed}-{i}",
                "problem": ",".join(f"{x}+{y}" for x, y in columns) + "=",
                "answer": str(a + b)[::-1],
                "digits": digits,
                "a": a,
                "b": b,
            }
        )
    return rows


def column_working(a: int, b: int, digits: int, drop_carry_from: int | None = None):
    """(`x+y+c=CS` per column, least significant first, comma-separated; the sum it spells,
    little-endian). With `drop_carry_from=k`, carries into column k and beyond are dropped
    (the first pass's systematic slip), and the result is what that working adds up to.
    """
    carry, parts, result = 0, [], ""
    for col, (x, y) in enumerate(zip(little_endian(a, digits), little_endian(b, digits))):
        carry_in = 0 if drop_carry_from is not None and col >= drop_carry_from else carry
        total = int(x) + int(y) + carry_in
        parts.append(f"{x}+{y}+{carry_in}={total:02d}")
        result += str(total % 10)
        carry = total // 10
    return ",".join(parts), result + ("1" if carry else "")


def long_thought(a: int, b: int, digits: int, cfg: TaskConfig, rng: random.Random) -> str:
    """One long-thought response (without the end-of-sequence token)."""
    working, current = column_working(a, b, digits, drop_carry_from=cfg.careless_from_column)
    text = f"{working}={current};"
    checks = rng.choices(range(len(cfg.check_probs)), weights=cfg.check_probs)[0]
    for _ in range(checks):
        working, result = column_working(a, b, digits)
        verdict = " ok;" if result == current else " fix;"
        text += f"chk:{working}={result}{verdict}"
        current = result
    return text + f"\\boxed{{{current}}}"


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)
    return path


def build_tokenizer():
    """The character-level HF fast tokenizer of the task (offline, deterministic)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate((PAD, EOS, UNK) + WORDS + CHARS)}
    pattern = "|".join(w.replace("\\", "\\\\").replace("{", "\\{") for w in WORDS) + r"|[\s\S]"
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, unk_token=UNK, model_max_length=1024
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_base_model(out_dir: Path, *, layers: int = 4, hidden: int = 128, seed: int = 0) -> Path:
    """A randomly initialised Qwen2 (2 heads of 64: vLLM's CPU attention needs head_dim 64)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tok = build_tokenizer()
    eos, pad = tok.convert_tokens_to_ids(EOS), tok.convert_tokens_to_ids(PAD)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir


def sft_rows(problems: list[dict], cfg: TaskConfig, seed: int, tokenizer) -> list[dict]:
    """`o1p train --loss sft` rows: one long-thought trace per problem."""
    rng = random.Random(seed)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    rows = []
    for p in problems:
        response = long_thought(p["a"], p["b"], p["digits"], cfg, rng)
        rows.append(
            {
                "problem_id": p["id"],
                "prompt_ids": tokenizer.encode(p["problem"], add_special_tokens=False),
                "response_ids": tokenizer.encode(response, add_special_tokens=False) + [eos],
            }
        )
    return rows
