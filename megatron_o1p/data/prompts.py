"""Prompts: a problem -> chat messages -> the model's chat template -> prompt token ids.

The system prompt asks for the final answer in `\\boxed{}` (as the official O1-Pruner code
does). `speed="fast"` appends the paper's fast-solving baseline suffix to the user turn
(O1-Pruner, arXiv 2501.12570, sec. 4.1 baselines: "Be confident. Solving this problem quickly
with less pause, stop or reflection.").

Thinking. `enable_thinking` is passed to every template as a chat-template argument, as
Qwen3's template reads it: True (or absent) opens the assistant turn and lets the model write
`<think>...</think>` before its answer; False pre-fills an empty `<think>\\n\\n</think>\\n\\n`
so it answers directly. Templates that never read the argument (Qwen2.5, the DeepSeek-R1
distills) render the same prompt either way, so `load_tokenizer(..., enable_thinking=False)`
refuses them rather than label a thinking run "no thinking". The grader reads the answer after
the last `</think>`, or the whole response when there is none (`grading/extract.py`).

The template is rendered to text with the tokenizer's own `apply_chat_template`
(`add_generation_prompt=True`), then encoded without adding special tokens again, so the ids
are exactly what the template spells. Tokenizers are loaded with `trust_remote_code=False`.

Tested by tests/unit/data/test_problems.py, tests/unit/config/test_sampling.py and
tests/e2e/test_sample_cli.py.
"""

from __future__ import annotations

from pathlib import Path

from megatron_o1p.config.choices import SPEED_PROMPTS
from megatron_o1p.errors import ConfigError, SetupError

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
FAST_SUFFIX = "Be confident. Solving this problem quickly with less pause, stop or reflection."


def load_tokenizer(model_dir: str | Path, *, enable_thinking: bool = True):
    """The HF tokenizer of `model_dir` (offline-capable, no remote code).

    Args:
        model_dir: the HF model folder.
        enable_thinking: the run's thinking setting; False needs a template that reads it.

    Raises:
        SetupError: the folder has no loadable tokenizer.
        ConfigError: the tokenizer has no chat template, or `enable_thinking` is False and the
            template does not read it.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    except Exception as err:  # transformers raises OSError, ValueError, ...
        raise SetupError(
            f"cannot load a tokenizer from {model_dir} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); pass an HF model folder"
        ) from err
    if not getattr(tok, "chat_template", None):
        raise ConfigError(
            f"the tokenizer in {model_dir} has no chat_template; use an instruct/chat model "
            "or add a chat template to tokenizer_config.json"
        )
    if not enable_thinking and "enable_thinking" not in _template_text(tok):
        raise ConfigError(
            f"--no-thinking: the chat template of {model_dir} does not read enable_thinking, so "
            "the model would think anyway; drop --no-thinking for this model"
        )
    return tok


def _template_text(tokenizer) -> str:
    """Every chat template of `tokenizer` as one string (one, or a name -> template dict)."""
    template = tokenizer.chat_template
    return " ".join(template.values()) if isinstance(template, dict) else str(template)


def build_messages(
    problem: str, *, speed: str = "normal", system_prompt: str = SYSTEM_PROMPT
) -> list[dict]:
    """System + user messages for one problem.

    Args:
        problem: the problem text.
        speed: "normal", or "fast" to append `FAST_SUFFIX` to the user turn.
        system_prompt: the system turn; "" for none.

    Returns:
        Chat messages (`role`, `content`).
    """
    if speed not in SPEED_PROMPTS:
        raise ConfigError(f"speed prompt must be one of {SPEED_PROMPTS}, got {speed!r}")
    user = problem if speed == "normal" else f"{problem}\n{FAST_SUFFIX}"
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return messages + [{"role": "user", "content": user}]


def prompt_ids(
    tokenizer,
    problem: str,
    *,
    speed: str = "normal",
    system_prompt: str = SYSTEM_PROMPT,
    enable_thinking: bool = True,
) -> list[int]:
    """Token ids of the chat prompt for `problem`, ending where the assistant turn starts.

    Templates that reject a system role (e.g. Gemma's) get the system prompt prepended to
    the user turn instead.

    Args:
        tokenizer: an HF tokenizer with a chat template.
        problem: the problem text.
        speed: "normal" or "fast".
        system_prompt: the system turn; "" for none.
        enable_thinking: the chat-template argument (Qwen3: False pre-fills an empty
            thinking block).

    Returns:
        [P] prompt token ids.
    """
    messages = build_messages(problem, speed=speed, system_prompt=system_prompt)
    render = dict(tokenize=False, add_generation_prompt=True, enable_thinking=enable_thinking)
    try:
        text = tokenizer.apply_chat_template(messages, **render)
    except Exception:  # jinja2 TemplateError raised by "system role not supported" templates
        if not system_prompt:
            raise
        merged = [{"role": "user", "content": f"{system_prompt}\n\n{messages[-1]['content']}"}]
        text = tokenizer.apply_chat_template(merged, **render)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
