"""Which HF architectures the converter implements, and the one-line refusal for the rest.

`check_supported` runs first on every `config.json` (`hf_config.architecture_from_dict`), so an
architecture or a setting we do not implement stops with one line naming it, before any
weight is read or any model is built:

    m/config.json: unsupported model_type='qwen3_next': Qwen3-Next: hybrid linear attention
    (Gated DeltaNet layers between full-attention layers) is not implemented, nor are its
    experts (supported: qwen2, llama, qwen3, qwen3_moe)

Two tables, both data. `UNSUPPORTED_MODEL_TYPES` names known families and why they are
refused; `UNSUPPORTED_KEYS` refuses a setting whatever the model_type claims (a fine-tune may
keep `model_type="qwen2"` and add experts). To add a family: put its model_type in
`SUPPORTED_MODEL_TYPES`, delete its row below, and narrow the `families` of the key rules
it now implements (as Qwen3-MoE did: the expert keys are refused for the dense families only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from megatron_o1p.errors import ConfigError

SUPPORTED_MODEL_TYPES = ("qwen2", "llama", "qwen3", "qwen3_moe")

_HYBRID_LINEAR = (
    "hybrid linear attention (Gated DeltaNet layers between full-attention layers) is not "
    "implemented"
)
_MLA = "multi-head latent attention (MLA) is not implemented"

UNSUPPORTED_MODEL_TYPES: dict[str, str] = {
    "qwen2_moe": (
        "Qwen2-MoE (shared expert beside the routed ones) is not supported yet; dense Qwen2 "
        "and Qwen3-MoE are"
    ),
    "qwen3_next": f"Qwen3-Next: {_HYBRID_LINEAR}, nor are its experts",
    "qwen3_5": f"Qwen3.5: {_HYBRID_LINEAR}",
    "qwen3_5_text": f"Qwen3.5: {_HYBRID_LINEAR}",
    "qwen3_5_moe": f"Qwen3.5-MoE: {_HYBRID_LINEAR}, nor are its experts",
    "qwen3_5_moe_text": f"Qwen3.5-MoE: {_HYBRID_LINEAR}, nor are its experts",
    "gpt_oss": (
        "gpt-oss (mixture of experts, attention sinks, alternating sliding-window layers) is "
        "not implemented"
    ),
    "deepseek_v2": f"DeepSeek-V2: {_MLA}",
    "deepseek_v3": f"DeepSeek-V3 / R1: {_MLA}",
    "deepseek_v32": f"DeepSeek-V3.2: {_MLA}",
    "mistral": "Mistral's sliding-window attention is not implemented",
}
"""model_type -> why it is refused (the sentence after `unsupported model_type=...:`)."""


def _truthy(value) -> bool:
    return bool(value)


def _not_all_full_attention(value) -> bool:
    return any(t != "full_attention" for t in value or [])


@dataclass(frozen=True)
class KeyRule:
    """A config.json key whose value we refuse."""

    key: str
    why: str
    refuses: Callable[[object], bool] = _truthy
    """value -> True to refuse it (a missing key is None)."""
    families: tuple[str, ...] = ()
    """The model_types the rule applies to; () = all."""
    shown: Callable[[object], object] = lambda value: value
    """What the message prints of the value."""


_LLAMA = ("llama",)
_DENSE = ("qwen2", "llama", "qwen3")
_MOE_ONLY_QWEN3 = "mixture of experts is implemented for Qwen3-MoE (model_type qwen3_moe) only"
_EVERY_LAYER_MOE = (
    "every layer must be a mixture of experts (dense layers between them are not implemented)"
)

UNSUPPORTED_KEYS: tuple[KeyRule, ...] = (
    KeyRule("num_experts", _MOE_ONLY_QWEN3, families=_DENSE),
    KeyRule("num_local_experts", _MOE_ONLY_QWEN3, families=_DENSE),
    KeyRule("n_routed_experts", _MOE_ONLY_QWEN3, families=_DENSE),
    KeyRule("moe_intermediate_size", _MOE_ONLY_QWEN3, families=_DENSE),
    KeyRule("shared_expert_intermediate_size", "shared experts are not implemented"),
    KeyRule("n_shared_experts", "shared experts are not implemented"),
    KeyRule(
        "decoder_sparse_step",
        _EVERY_LAYER_MOE,
        lambda value: value not in (None, 1),
        families=("qwen3_moe",),
    ),
    KeyRule("mlp_only_layers", _EVERY_LAYER_MOE, families=("qwen3_moe",)),
    KeyRule("kv_lora_rank", _MLA),
    KeyRule("q_lora_rank", _MLA),
    KeyRule("linear_num_value_heads", _HYBRID_LINEAR),
    KeyRule("use_sliding_window", "sliding-window attention is not implemented"),
    KeyRule(
        "layer_types",
        "only full_attention layers are implemented (no sliding-window or linear attention)",
        _not_all_full_attention,
        shown=lambda value: sorted(set(value)),
    ),
    KeyRule(
        "hidden_act",
        "only silu (SwiGLU) is implemented",
        lambda value: value is not None and value != "silu",
    ),
    KeyRule("attention_bias", "biases on Llama projections are not implemented", families=_LLAMA),
    KeyRule("mlp_bias", "biases on Llama projections are not implemented", families=_LLAMA),
    KeyRule("pretraining_tp", "must be 1", lambda value: value not in (None, 1), families=_LLAMA),
    KeyRule(
        "attention_bias",
        "Qwen3 with q/k/v/o projection biases is not implemented",
        families=("qwen3", "qwen3_moe"),
    ),
)
"""Settings refused whatever the model_type (within `families`), checked in this order."""


def check_supported(cfg: dict, path="config.json") -> str:
    """The model_type of `cfg` if this project implements it and every setting it uses.

    Raises:
        ConfigError: one line, `PATH: unsupported KEY=VALUE: why`.
    """
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        why = UNSUPPORTED_MODEL_TYPES.get(model_type, "not implemented")
        supported = ", ".join(SUPPORTED_MODEL_TYPES)
        refuse(path, "model_type", model_type, f"{why} (supported: {supported})")
    for rule in UNSUPPORTED_KEYS:
        if rule.families and model_type not in rule.families:
            continue
        value = cfg.get(rule.key)
        if rule.refuses(value):
            refuse(path, rule.key, rule.shown(value), rule.why)
    return model_type


def refuse(path, key: str, value, why: str) -> None:
    """Raise the one-line ConfigError for an unsupported `key=value` of `path`."""
    raise ConfigError(f"{path}: unsupported {key}={value!r}: {why}")
