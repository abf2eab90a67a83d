"""SamplingConfig: what `o1p sample` and `o1p evaluate` ask vLLM for, per problem.

The defaults are the sample stage's (the official O1-Pruner code's rollout settings: K = 16,
temperature 0.5, top-p 0.8). `o1p evaluate` evaluates greedily, as the paper does: its command
applies `EVALUATION_DEFAULTS` with `parser.set_defaults`, and `SamplingConfig.greedy()` builds
the same settings in code.

Both stages turn a SamplingConfig into requests in one place, `rollout/sample.sample_problems`:
one request per problem with K samples, seeded by `problem_seed(seed, problem_id)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from megatron_o1p.config.choices import SPEED_PROMPTS
from megatron_o1p.config.flags import Flags, OnOffSwitch, flag, require, shared
from megatron_o1p.data.prompts import SYSTEM_PROMPT

EVALUATION_DEFAULTS = {"num_samples": 1, "temperature": 0.0, "top_p": 1.0}
"""`o1p evaluate`'s defaults: one greedy response per problem (paper Table 2)."""


@dataclass
class SamplingConfig(Flags):
    """Per-problem sampling settings (flags map one-to-one onto fields)."""

    num_samples: int = flag(
        16, "K, responses per problem (paper: 16 for Marco-o1, 12 for QwQ; evaluate: 1, greedy)"
    )
    """K >= 1; sample k of a problem is `sample_index` k."""
    temperature: float = flag(0.5, "sampling temperature, 0 = greedy (official code: 0.5)")
    """>= 0; 0 picks the most likely token."""
    top_p: float = flag(0.8, "nucleus mass in (0, 1] (official code: 0.8)")
    """Probability mass kept before sampling; 1 = no truncation."""
    max_tokens: int = flag(
        8192,
        'response token limit; a longer response ends with finish_reason "length" and is '
        "graded incorrect",
    )
    """Tokens per response, the EOS that ends a response included."""
    seed: int = shared(
        "seed",
        "base seed; each problem's request seed derives from it and the problem id",
        default=0,
    )
    """Request seeds are `problem_seed(seed, problem_id)`: independent of batching and sharding."""
    speed_prompt: str = flag(
        "normal",
        "fast appends the paper's fast-solving suffix to every problem",
        choices=SPEED_PROMPTS,
    )
    """"fast" is the paper's Fast-solving Prompt baseline (`data/prompts.py`)."""
    system_prompt: str = SYSTEM_PROMPT
    """System turn asking for a \\boxed{} answer; "" for none (no flag)."""
    enable_thinking: bool = flag(
        True,
        "the chat template's enable_thinking argument (Qwen3): --enable-thinking, the default, "
        "lets the model think before it answers; --no-thinking pre-fills an empty thinking "
        "block (refused for templates that ignore the argument)",
        name="--enable-thinking",
        aliases=("--no-thinking",),
        action=OnOffSwitch,
    )
    """Passed to `apply_chat_template` as `enable_thinking` (`data/prompts.py`); templates
    that do not read it render the same prompt either way, so False is refused for them."""

    def __post_init__(self) -> None:
        require(self.num_samples >= 1, f"--num-samples must be >= 1, got {self.num_samples}")
        require(self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}")
        require(0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}")
        require(self.max_tokens >= 1, f"--max-tokens must be >= 1, got {self.max_tokens}")
        require(
            self.speed_prompt in SPEED_PROMPTS,
            f"--speed-prompt must be one of {SPEED_PROMPTS}, got {self.speed_prompt!r}",
        )

    @classmethod
    def greedy(cls, **overrides) -> SamplingConfig:
        """`o1p evaluate`'s settings (`EVALUATION_DEFAULTS`), with `overrides` on top."""
        return cls(**{**EVALUATION_DEFAULTS, **overrides})
