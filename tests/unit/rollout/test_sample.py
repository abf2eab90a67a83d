"""rollout/sample.py without vLLM: the config and its validation, the recorded settings
(config.json), per-problem seeds, chunk ownership and the prompt check of `sample_problems`."""

import pytest

from megatron_o1p.config.engine import EngineConfig
from megatron_o1p.config.sampling import SamplingConfig
from megatron_o1p.data.fingerprint import FINGERPRINT_KEY
from megatron_o1p.data.problems import Problem, ProblemSource
from megatron_o1p.errors import ConfigError, DataError
from megatron_o1p.rollout.sample import (
    SampleConfig,
    build_prompts,
    owned_chunks,
    problem_seed,
)


def _config(**kw):
    return SampleConfig(
        source=ProblemSource("p.jsonl", preset="math"),
        engine=EngineConfig(model="hf"),
        out="out",
        **kw,
    )


def test_recorded_settings_keep_their_keys():
    recorded = _config(sampling=SamplingConfig(num_samples=4, seed=3)).recorded(5, "abc")
    assert sorted(recorded) == sorted(
        [
            "stage",
            "model",
            "dtype",
            "problems",
            "num_problems",
            "num_samples",
            "temperature",
            "top_p",
            "max_tokens",
            "seed",
            "speed_prompt",
            "system_prompt",
            "enable_thinking",
            "problems_per_shard",
            "logprobs_mode",
            FINGERPRINT_KEY,
        ]
    )
    assert recorded["num_samples"] == 4 and recorded["seed"] == 3
    assert recorded["problems"] == {
        "path": "p.jsonl",
        "preset": "math",
        "problem_field": None,
        "answer_field": None,
        "id_field": None,
        "split": "test",
        "dataset_config": None,
    }


def test_shards_and_seeds():
    cfg = _config(problems_per_shard=2, num_shards=2, shard_index=1)
    assert owned_chunks(5, cfg) == [(1, range(2, 4))]
    assert problem_seed(0, "7") == problem_seed(0, "7") != problem_seed(1, "7")
    assert 0 <= problem_seed(123, "x") < 2**31
    with pytest.raises(ConfigError, match=r"--shard-index must be in \[0, 2\), got 2"):
        _config(num_shards=2, shard_index=2)
    with pytest.raises(ConfigError, match="--problems-per-shard must be >= 1"):
        _config(problems_per_shard=0)


class _Tokenizer:
    """Chat template = the user turn; one token per character."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, **template_args):
        return messages[-1]["content"]

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [ord(c) for c in text]}


def test_a_prompt_that_fills_the_context_names_the_file_and_row():
    problems = [Problem("0", "ab", "1"), Problem("1", "abcdef", "2")]
    sampling = SamplingConfig(system_prompt="")
    assert build_prompts(_Tokenizer(), problems[:1], sampling, 6, path="p.jsonl") == [[97, 98]]
    with pytest.raises(DataError, match="p.jsonl row 11.*prompt has 6 tokens, the model context"):
        build_prompts(_Tokenizer(), problems, sampling, 6, path="p.jsonl", first_row=10)
