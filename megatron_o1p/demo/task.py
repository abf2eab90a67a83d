"""The demo's synthetic task: long-thought running sums with a real length/accuracy trade-off.

A problem is a list of 2-6 one-digit terms, each tagged with a letter (difficulty = number of
terms); the answer is their sum:

    a3,b5,c9,d2,e7=          answer 26

A "long-thought" response, as the base model's SFT data spells it:

    a3,b+5=8,c+9=17,d+2=19,e+7=16=16;chk:a3,b+5=8,c+9=17,d+2=19,e+7=26=26 fix;\\boxed{26}

- a first pass: the running total, one step per term (`c+9=17`: the term's letter, the term,
  the new total), then its result;
- then 0-2 checks, each the same working done again, ending in its result and ` ok;` (it
  agrees with what came before) or ` fix;` (it does not, and replaces it);
- then the answer in `\\boxed{}` (the last result) and the end-of-sequence token.

Two ingredients give the paper's length disharmony (section 3) by construction:
- the number of checks is drawn independently of the problem, so wherever the first pass is
  right, every check is pure waste;
- the first pass makes a systematic slip: from the fourth term on, when the ones digit
  overflows it forgets to carry into the tens (`e+7=16` above, where 26 was right). Two- and
  three-term problems never hit it; longer ones do more and more often (about 45% of 4-term
  and 85% of 6-term problems).
  Only a check catches it, so there a trace without a check is wrong; and the slip is
  deterministic, so the model repeats it under greedy decoding too. Blind shortening costs
  accuracy on exactly those items, so the accuracy term of R_LH has work to do.

The letters make every lookup content-addressed (step `c` reads the term after `c` in the
prompt): a tiny rotary-position model learns that in minutes, whereas reading "the i-th
digit" by position took it far longer than the demo's budget. The tokenizer is
character-level plus a few multi-character tokens (`chk:`, ` ok;`, ` fix;`, `\\boxed{`), an
HF fast tokenizer (`tokenizer.json`) with a chat template that renders only the user's text,
so `o1p sample`/`o1p evaluate` prompt with exactly the problem.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from megatron_o1p.atomic import write_text

EOS, PAD, UNK = "</s>", "<pad>", "<unk>"
WORDS = ("chk:", " ok;", " fix;", "\\boxed{")
LETTERS = "abcdefgh"
CHARS = tuple("0123456789+=,;:}" + LETTERS)
#: Renders the last user turn verbatim (system prompts and speed suffixes are not part of
#: this toy language; the tiny model never saw them).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ message['content'] }}{% endif %}{% endfor %}"
)


@dataclass(frozen=True)
class TaskConfig:
    min_terms: int = 2
    max_terms: int = 6
    check_probs: tuple[float, ...] = (0.35, 0.15, 0.5)
    """P(0, 1, 2 checks), the same for every problem. Most traces check (0.65), and most of
    those check twice (0.5/0.65), so the base model's greedy answer checks twice everywhere."""
    careless_from_term: int = 3
    """The first pass forgets the carry when adding this term (0 = first) or a later one."""

    def __post_init__(self):
        if not 2 <= self.min_terms <= self.max_terms <= len(LETTERS):
            raise ValueError(f"terms must satisfy 2 <= min <= max <= {len(LETTERS)}")


def make_problems(n: int, cfg: TaskConfig, seed: int) -> list[dict]:
    """`n` problems, term counts spread evenly over the range; ids are unique per seed."""
    rng = random.Random(seed)
    rows = []
    span = cfg.max_terms - cfg.min_terms + 1
    for i in range(n):
        count = cfg.min_terms + i % span
        terms = [rng.randint(1, 9) for _ in range(count)]
        rows.append(
            {
                "id": f"s{seed}-{i}",
                "problem": ",".join(f"{LETTERS[k]}{t}" for k, t in enumerate(terms)) + "=",
                "answer": str(sum(terms)),
                "terms": terms,
                "difficulty": f"n{count}",
            }
        )
    return rows


def working(terms: list[int], careless_from: int | None = None) -> tuple[str, int]:
    """(the running-total working, the total it reaches). With `careless_from=k`, adding term
    k or a later one drops the carry into the tens (the first pass's systematic slip)."""
    total, steps = terms[0], [f"{LETTERS[0]}{terms[0]}"]
    for k, term in enumerate(terms[1:], start=1):
        new = total + term
        if careless_from is not None and k >= careless_from and new % 10 < total % 10:
            new -= 10  # the ones digit wrapped, the tens did not move
        steps.append(f"{LETTERS[k]}+{term}={new}")
        total = new
    return ",".join(steps), total


def long_thought(terms: list[int], cfg: TaskConfig, rng: random.Random) -> str:
    """One long-thought response (without the end-of-sequence token)."""
    text, current = working(terms, careless_from=cfg.careless_from_term)
    text += f"={current};"
    checks = rng.choices(range(len(cfg.check_probs)), weights=cfg.check_probs)[0]
    for _ in range(checks):
        steps, result = working(terms)
        verdict = " ok;" if result == current else " fix;"
        text += f"chk:{steps}={result}{verdict}"
        current = result
    return text + f"\\boxed{{{current}}}"


def parse_problem(problem: str) -> list[int]:
    """The terms of a problem as `make_problems` spells it (`a3,b5,c9=` -> [3, 5, 9])."""
    body = problem.strip()
    if not body.endswith("=") or not body[:-1]:
        raise ValueError(f"not a demo problem: {problem!r}")
    terms = body[:-1].split(",")
    if any(len(t) != 2 or t[0] != LETTERS[i] or not t[1].isdigit() for i, t in enumerate(terms)):
        raise ValueError(f"not a demo problem: {problem!r}")
    return [int(t[1]) for t in terms]


def oracle_response(terms: list[int], cfg: TaskConfig) -> str:
    """The shortest trace in the task's language that ends in the right answer: the first pass,
    plus one check only where the first pass slipped (the check fixes it)."""
    text, current = working(terms, careless_from=cfg.careless_from_term)
    text += f"={current};"
    if current != sum(terms):
        steps, current = working(terms)
        text += f"chk:{steps}={current} fix;"
    return text + f"\\boxed{{{current}}}"


def token_count(text: str) -> int:
    """Tokens of `text` under `build_tokenizer` (each of WORDS is one token, any other
    character one), without importing it."""
    count, i = 0, 0
    while i < len(text):
        word = next((w for w in WORDS if text.startswith(w, i)), None)
        i += len(word) if word else 1
        count += 1
    return count


def oracle_length(problem: str, cfg: TaskConfig) -> int:
    """Response tokens of the oracle trace, counting the end-of-sequence token as
    `o1p evaluate` does."""
    return token_count(oracle_response(parse_problem(problem), cfg)) + 1


def write_jsonl(rows: list[dict], path: Path) -> Path:
    """One JSON object a line, written atomically."""
    return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


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


def build_base_model(
    out_dir: Path, *, layers: int = 4, hidden: int = 128, head_dim: int = 32, seed: int = 0
) -> Path:
    """A randomly initialised Qwen2 (vLLM's CPU attention takes head_dim 32, 64, 80, ...)."""
    from transformers.utils import logging as hf_logging

    from megatron_o1p.testing.tiny_models import save_random_qwen2

    hf_logging.disable_progress_bar()  # one tiny shard; the demo prints its own progress
    heads = hidden // head_dim
    return save_random_qwen2(
        out_dir,
        build_tokenizer(),
        eos_token=EOS,
        pad_token=PAD,
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        seed=seed,
        reinitialize=False,  # the demo's base model was always drawn by transformers' init
    )


def sft_rows(problems: list[dict], cfg: TaskConfig, seed: int, tokenizer) -> list[dict]:
    """`o1p train --loss sft` rows: one long-thought trace per problem."""
    rng = random.Random(seed)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    rows = []
    for p in problems:
        response = long_thought(p["terms"], cfg, rng)
        rows.append(
            {
                "problem_id": p["id"],
                "prompt_ids": tokenizer.encode(p["problem"], add_special_tokens=False),
                "response_ids": tokenizer.encode(response, add_special_tokens=False) + [eos],
            }
        )
    return rows


def check_shares(samples: list[tuple[str, str, bool]]) -> dict[str, dict[int, tuple[float, float]]]:
    """Per level, per number of checks: (share of the level's samples, their accuracy).

    `samples`: (level, response text, correct) triples, e.g. a round's graded rollouts. This
    is where a pruning round's effect shows before greedy decoding flips: the share of samples
    that stop after the first pass or after one check."""
    counts: dict[str, dict[int, list[int]]] = {}
    for level, text, correct in samples:
        per_checks = counts.setdefault(level, {})
        n_correct = per_checks.setdefault(text.count(WORDS[0]), [0, 0])
        n_correct[0] += 1
        n_correct[1] += bool(correct)
    return {
        level: {
            checks: (n / sum(v[0] for v in per_checks.values()), ok / n)
            for checks, (n, ok) in sorted(per_checks.items())
        }
        for level, per_checks in sorted(counts.items())
    }


def format_check_shares(shares: dict[str, dict[int, tuple[float, float]]]) -> str:
    """`check_shares` as one line per level: `n4  0 checks 35% (acc 48%)  1 check ...`."""
    lines = []
    for level, per_checks in shares.items():
        cells = [
            f"{checks} {'check' if checks == 1 else 'checks'} {100 * share:3.0f}% "
            f"(acc {100 * acc:3.0f}%)"
            for checks, (share, acc) in per_checks.items()
        ]
        lines.append(f"{level}  " + "  ".join(cells))
    return "\n".join(lines)
