"""The refusal tables: every architecture or setting we do not implement stops in one line that
names it, the path and the supported families; the families we implement pass."""

import pytest

from megatron_o1p.errors import ConfigError
from megatron_o1p.models.support import (
    SUPPORTED_MODEL_TYPES,
    UNSUPPORTED_MODEL_TYPES,
    check_supported,
)

DENSE = dict(model_type="qwen3", hidden_act="silu", attention_bias=False, use_sliding_window=False)


def _refusal(cfg: dict) -> str:
    with pytest.raises(ConfigError) as err:
        check_supported(cfg, "m/config.json")
    message = str(err.value)
    assert "\n" not in message and message.startswith("m/config.json: unsupported ")
    return message


@pytest.mark.parametrize(
    "model_type, words",
    [
        ("qwen2_moe", "Qwen2-MoE (shared expert beside the routed ones)"),
        ("qwen3_next", "hybrid linear attention"),
        ("qwen3_5", "Qwen3.5: hybrid linear attention"),
        ("qwen3_5_text", "Qwen3.5: hybrid linear attention"),
        ("qwen3_5_moe", "Qwen3.5-MoE"),
        ("gpt_oss", "gpt-oss"),
        ("deepseek_v3", "multi-head latent attention (MLA)"),
        ("deepseek_v2", "multi-head latent attention (MLA)"),
        ("gemma3", "not implemented"),
    ],
)
def test_unsupported_architectures_are_named(model_type, words):
    message = _refusal(dict(DENSE, model_type=model_type))
    assert f"unsupported model_type={model_type!r}: " in message and words in message
    assert "(supported: qwen2, llama, qwen3, qwen3_moe)" in message


@pytest.mark.parametrize(
    "override, shown",
    [
        (dict(num_experts=128, moe_intermediate_size=768), "num_experts=128"),
        (dict(model_type="qwen3_moe", decoder_sparse_step=2), "decoder_sparse_step=2"),
        (dict(model_type="qwen3_moe", mlp_only_layers=[0]), "mlp_only_layers=[0]"),
        (
            dict(model_type="qwen3_moe", shared_expert_intermediate_size=64),
            "shared_expert_intermediate_size=64",
        ),
        (dict(model_type="qwen2", n_routed_experts=64), "n_routed_experts=64"),
        (dict(model_type="llama", kv_lora_rank=512), "kv_lora_rank=512"),
        (dict(use_sliding_window=True, sliding_window=4096), "use_sliding_window=True"),
        (
            dict(layer_types=["linear_attention", "full_attention"]),
            "layer_types=['full_attention', 'linear_attention']",
        ),
        (dict(layer_types=["sliding_attention"]), "layer_types=['sliding_attention']"),
        (dict(attention_bias=True), "attention_bias=True"),
        (dict(model_type="llama", mlp_bias=True), "mlp_bias=True"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
    ],
)
def test_unsupported_settings_are_named(override, shown):
    assert f"unsupported {shown}: " in _refusal(dict(DENSE, **override))


def test_supported_families_pass_and_tables_are_disjoint():
    for model_type in SUPPORTED_MODEL_TYPES:
        cfg = dict(DENSE, model_type=model_type, layer_types=["full_attention"] * 2)
        assert check_supported(cfg) == model_type
    assert check_supported(dict(DENSE, model_type="qwen2", attention_bias=True)) == "qwen2"
    moe = dict(DENSE, model_type="qwen3_moe", num_experts=8, decoder_sparse_step=1)
    assert check_supported(dict(moe, mlp_only_layers=[])) == "qwen3_moe"
    assert not set(SUPPORTED_MODEL_TYPES) & set(UNSUPPORTED_MODEL_TYPES)
