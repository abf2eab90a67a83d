"""Chat prompts with Qwen3's thinking switch: `enable_thinking` reaches the template as an
argument (on by default), and --no-thinking is refused for templates that ignore it."""

import pytest

from megatron_o1p.data.prompts import load_tokenizer, prompt_ids
from megatron_o1p.errors import ConfigError


def _text(tok, **kwargs) -> str:
    return tok.decode(prompt_ids(tok, "What is 2+3?", **kwargs))


def test_qwen3_thinks_by_default_and_not_with_no_thinking(tiny_qwen3):
    tok = load_tokenizer(tiny_qwen3, enable_thinking=False)
    on, off = _text(tok), _text(tok, enable_thinking=False)
    assert on == _text(tok, enable_thinking=True)
    assert on.endswith("<|im_start|>assistant\n") and "<think>" not in on
    assert off == on + "<think>\n\n</think>\n\n"
    # The thinking delimiters are single, non-special tokens: a response keeps them when
    # decoded with skip_special_tokens, so the grader finds the answer after </think>.
    think_end = tok.convert_tokens_to_ids("</think>")
    assert prompt_ids(tok, "x", enable_thinking=False)[-3] == think_end
    assert tok.decode([think_end], skip_special_tokens=True) == "</think>"


def test_no_thinking_is_refused_for_a_template_without_the_switch(tiny_qwen2):
    with pytest.raises(ConfigError) as err:
        load_tokenizer(tiny_qwen2, enable_thinking=False)
    assert "--no-thinking: the chat template of" in str(err.value)
    assert "drop --no-thinking" in str(err.value) and "\n" not in str(err.value)
    tok = load_tokenizer(tiny_qwen2)
    assert _text(tok, enable_thinking=False) == _text(tok)  # the argument is ignored there
