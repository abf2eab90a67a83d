"""config.json -> ModelArchitecture: supported families parse; unsupported settings fail with a
one-line error naming the key."""

import json

import pytest

from megatron_o1p.errors import CheckpointError, ConfigError
from megatron_o1p.models.hf_config import architecture_from_dict, read_architecture

QWEN2 = dict(
    model_type="qwen2",
    vocab_size=1000,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    rope_parameters={"rope_theta": 1e6, "rope_type": "default"},
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    use_sliding_window=False,
    sliding_window=None,
    layer_types=["full_attention"] * 4,
)
LLAMA = dict(
    model_type="llama",
    vocab_size=1003,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=2,
    head_dim=8,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def test_qwen2_fields():
    arch = architecture_from_dict(QWEN2)
    assert arch.add_qkv_bias and arch.tie_word_embeddings
    assert (arch.num_query_groups, arch.kv_channels, arch.rope_theta) == (2, 16, 1e6)
    assert arch.padded_vocab_size() == 1024 and arch.padded_vocab_size(256) == 1024


def test_llama_fields_transformers4_keys():
    arch = architecture_from_dict(LLAMA)
    assert not arch.add_qkv_bias and not arch.tie_word_embeddings
    assert (arch.num_query_groups, arch.kv_channels, arch.rope_theta) == (2, 8, 500000.0)
    assert arch.llama3_rope_factor is None


def test_llama3_rope_scaling_supported():
    cfg = dict(
        LLAMA,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    assert architecture_from_dict(cfg).llama3_rope_factor == 8.0


@pytest.mark.parametrize(
    "override, key",
    [
        (dict(model_type="mistral"), "model_type"),
        (
            dict(rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}),
            "rope_scaling.rope_type",
        ),
        (dict(rope_scaling={"type": "linear", "factor": 2.0}), "rope_scaling.rope_type"),
        (dict(use_sliding_window=True, sliding_window=4096), "use_sliding_window"),
        (dict(num_experts=8), "num_experts"),
        (dict(hidden_act="gelu"), "hidden_act"),
        (dict(layer_types=["sliding_attention"] * 4), "layer_types"),
    ],
)
def test_unsupported_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        architecture_from_dict(dict(QWEN2, **override), "m/config.json")
    message = str(err.value)
    assert "\n" not in message and f"unsupported {key}=" in message and "m/config.json" in message


def test_llama3_rope_with_other_frequencies_is_refused():
    cfg = dict(LLAMA, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 2.0})
    with pytest.raises(ConfigError, match="rope_scaling.low_freq_factor"):
        architecture_from_dict(cfg)


def test_llama_attention_bias_refused():
    with pytest.raises(ConfigError, match="unsupported attention_bias=True"):
        architecture_from_dict(dict(LLAMA, attention_bias=True))


def test_tensor_parallel_must_divide_heads_and_kv_heads():
    arch = architecture_from_dict(LLAMA)
    arch.check_tensor_parallel(2, 1024)
    with pytest.raises(
        ConfigError,
        match=r"num_key_value_heads \(2\) must be a multiple of "
        r"tensor_model_parallel_size \(4\)",
    ):
        arch.check_tensor_parallel(4, 1024)
    with pytest.raises(ConfigError, match=r"num_attention_heads \(8\).*\(3\)"):
        arch.check_tensor_parallel(3, 1152)
    with pytest.raises(ConfigError, match="make-vocab-size-divisible-by"):
        architecture_from_dict(dict(LLAMA, num_key_value_heads=8)).check_tensor_parallel(8, 1028)


def test_pipeline_must_divide_layers():
    with pytest.raises(ConfigError, match=r"num_hidden_layers \(4\).*\(3 x 1 virtual\)"):
        architecture_from_dict(LLAMA).check_pipeline_parallel(3)


def test_read_architecture_missing_and_broken(tmp_path):
    with pytest.raises(CheckpointError, match="config.json: not found"):
        read_architecture(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_architecture(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(QWEN2))
    assert read_architecture(tmp_path).model_type == "qwen2"


QWEN3 = dict(
    model_type="qwen3",
    vocab_size=151936,
    hidden_size=4096,
    intermediate_size=12288,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    rope_theta=1000000,
    rope_scaling=None,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    attention_bias=False,
    use_sliding_window=False,
    sliding_window=None,
    max_window_layers=36,
    hidden_act="silu",
)
"""Qwen3-8B's config.json (transformers 4 keys), the first size with untied embeddings."""


def test_qwen3_fields():
    arch = architecture_from_dict(QWEN3)
    assert arch.qk_layernorm and not arch.add_qkv_bias and not arch.tie_word_embeddings
    assert (arch.num_query_groups, arch.kv_channels, arch.rope_theta) == (8, 128, 1e6)
    assert arch.padded_vocab_size() == 151936
    small = architecture_from_dict(dict(QWEN3, hidden_size=1024, num_attention_heads=16,
                                        tie_word_embeddings=True))  # fmt: skip
    # Qwen3-0.6B: head_dim 128 while hidden / heads = 64.
    assert small.kv_channels == 128 and small.tie_word_embeddings


def test_architecture_without_qk_layernorm_reads_old_checkpoints():
    from megatron_o1p.models.hf_config import ModelArchitecture

    stored = architecture_from_dict(QWEN2).to_json()
    del stored["qk_layernorm"]  # written before Qwen3 support
    assert ModelArchitecture.from_json(stored).qk_layernorm is False
