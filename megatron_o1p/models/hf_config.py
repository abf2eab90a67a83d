"""HF `config.json` (Qwen2 / Qwen2.5, Qwen3 dense and Llama families) -> the architecture
megatron builds.

`read_architecture` parses and validates a config once; anything we do not implement fails here
with a one-line `ConfigError` naming the architecture or the key (`models/support.py`), before
any model is built. Qwen3 differs from Qwen2 in three settings, all read from config.json: no
qkv bias, a per-head RMSNorm on q and k before RoPE (megatron's `qk_layernorm`), and an
explicit `head_dim` (128 for every size) that need not be hidden_size / heads. `transformer_config`
turns the architecture plus the run's parallel layout into megatron's `TransformerConfig`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from megatron_o1p.config.model import DEFAULT_VOCAB_MULTIPLE
from megatron_o1p.errors import CheckpointError, ConfigError
from megatron_o1p.models.support import SUPPORTED_MODEL_TYPES, check_supported, refuse

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "ModelArchitecture",
    "architecture_from_dict",
    "read_architecture",
    "transformer_config",
]

# Megatron's rotary_pos_embedding._apply_scaling hard-codes Llama 3.1's values except the factor.
_MEGATRON_LLAMA3_ROPE = {
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


@dataclass(frozen=True)
class ModelArchitecture:
    """The subset of an HF config that fixes the megatron model; stored in every checkpoint."""

    model_type: str
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_query_groups: int
    kv_channels: int
    """Per-head dimension (HF `head_dim`, else hidden_size / heads)."""
    vocab_size: int
    """The true vocab size from config.json (before megatron's padding)."""
    max_position_embeddings: int
    rope_theta: float
    rms_norm_eps: float
    add_qkv_bias: bool
    tie_word_embeddings: bool
    llama3_rope_factor: float | None = None
    """Llama 3.1 rope scaling factor; None = plain RoPE."""
    torch_dtype: str = "float32"
    qk_layernorm: bool = False
    """Per-head RMSNorm (weight [kv_channels]) on queries and keys before RoPE (Qwen3)."""
    num_experts: int | None = None
    """Routed experts of every layer's MLP (Qwen3-MoE); None = a dense model."""
    moe_router_topk: int = 0
    """Experts each token is routed to (HF `num_experts_per_tok`)."""
    moe_ffn_hidden_size: int = 0
    """One expert's intermediate size (HF `moe_intermediate_size`)."""
    norm_topk_prob: bool = True
    """Renormalise the top-k routing weights to sum to 1 (softmax over the top-k logits)."""
    router_aux_loss_coef: float = 0.0
    """Weight of the load-balancing loss in training (HF `router_aux_loss_coef`)."""

    @property
    def is_moe(self) -> bool:
        return self.num_experts is not None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ModelArchitecture":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def padded_vocab_size(self, multiple: int = DEFAULT_VOCAB_MULTIPLE) -> int:
        return int(math.ceil(self.vocab_size / multiple) * multiple)

    def check_tensor_parallel(self, tp: int, padded_vocab_size: int, where: str = "") -> None:
        """Raise `ConfigError` unless TP divides heads, query groups, ffn and the padded vocab."""
        checks = (
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_query_groups),
            ("intermediate_size", self.ffn_hidden_size),
            ("padded vocab size", padded_vocab_size),
        )
        for name, value in checks:
            if value % tp:
                fix = (
                    "reconvert with --make-vocab-size-divisible-by a multiple of the TP size"
                    if name == "padded vocab size"
                    else "choose a --tensor-model-parallel-size that divides it"
                )
                raise ConfigError(
                    f"{where}{name} ({value}) must be a multiple of tensor_model_parallel_size "
                    f"({tp}); {fix}"
                )

    def check_expert_parallel(self, ep: int, where: str = "", etp: int = 1) -> None:
        """Raise `ConfigError` unless EP (and expert TP) are 1, or divide a mixture of experts'
        experts (and each expert's FFN)."""
        if not self.is_moe:
            if ep == 1:  # expert TP means nothing to a dense model (megatron ignores it)
                return
            raise ConfigError(
                f"{where}--expert-model-parallel-size {ep} needs a mixture-of-experts model; "
                f"this {self.model_type} model is dense: drop it"
            )
        if self.num_experts % ep:
            raise ConfigError(
                f"{where}num_experts ({self.num_experts}) must be a multiple of "
                f"--expert-model-parallel-size ({ep}); choose one that divides it"
            )
        if self.moe_ffn_hidden_size % etp:
            raise ConfigError(
                f"{where}moe_intermediate_size ({self.moe_ffn_hidden_size}) must be a multiple "
                f"of --expert-tensor-parallel-size ({etp}); choose one that divides it"
            )

    def check_pipeline_parallel(self, pp: int, vpp: int | None = None) -> None:
        stages = pp * (vpp or 1)
        if self.num_layers % stages:
            raise ConfigError(
                f"num_hidden_layers ({self.num_layers}) must be divisible by pipeline stages "
                f"({pp} x {vpp or 1} virtual); choose sizes that divide it"
            )


def _rope(cfg: dict, path) -> tuple[float, float | None]:
    """Return (rope_theta, llama3 factor or None) from transformers 4 or 5 style keys."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    if params and not scaling and params.get("rope_type", "default") != "default":
        scaling = params
    theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    if not scaling:
        return float(theta), None
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type == "default":
        return float(theta), None
    if rope_type != "llama3":
        refuse(
            path,
            "rope_scaling.rope_type",
            rope_type,
            "only default and llama3 RoPE are implemented",
        )
    for key, expected in _MEGATRON_LLAMA3_ROPE.items():
        if float(scaling.get(key, expected)) != expected:
            refuse(
                path,
                f"rope_scaling.{key}",
                scaling.get(key),
                f"megatron's llama3 RoPE scaling fixes it at {expected}",
            )
    return float(theta), float(scaling.get("factor", 8.0))


def read_architecture(hf_dir: str | Path) -> ModelArchitecture:
    """Parse `hf_dir/config.json` into a `ModelArchitecture`.

    Raises:
        CheckpointError: config.json missing or not JSON.
        ConfigError: an architecture or setting this project does not implement.
    """
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; --hf-dir must be an HF model folder")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from err
    return architecture_from_dict(cfg, path)


def architecture_from_dict(cfg: dict, path="config.json") -> ModelArchitecture:
    """The architecture of a parsed config.json; `path` is named in errors.

    Raises:
        ConfigError: an architecture or setting this project does not implement.
    """
    model_type = check_supported(cfg, path)
    heads = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    head_dim = cfg.get("head_dim") or hidden // heads
    theta, llama3_factor = _rope(cfg, path)
    dtype = cfg.get("dtype") or cfg.get("torch_dtype") or "float32"
    return ModelArchitecture(
        model_type=model_type,
        num_layers=int(cfg["num_hidden_layers"]),
        hidden_size=hidden,
        ffn_hidden_size=int(cfg["intermediate_size"]),
        num_attention_heads=heads,
        num_query_groups=int(cfg.get("num_key_value_heads") or heads),
        kv_channels=int(head_dim),
        vocab_size=int(cfg["vocab_size"]),
        max_position_embeddings=int(cfg.get("max_position_embeddings", 4096)),
        rope_theta=theta,
        rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
        add_qkv_bias=model_type == "qwen2",
        qk_layernorm=model_type in ("qwen3", "qwen3_moe"),
        # Qwen2Config, Qwen3Config and LlamaConfig all default to untied when the key is absent
        # (Qwen3-0.6B/1.7B/4B set it true, 8B and larger false).
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        llama3_rope_factor=llama3_factor,
        torch_dtype=str(dtype).replace("torch.", ""),
        **(_experts(cfg) if model_type == "qwen3_moe" else {}),
    )


def _experts(cfg: dict) -> dict:
    """The mixture-of-experts fields of a Qwen3-MoE config (checked by `support.py`)."""
    return dict(
        # config.json of the Qwen3-MoE releases says num_experts; transformers 5 saves
        # num_local_experts
        num_experts=int(cfg.get("num_experts") or cfg["num_local_experts"]),
        moe_router_topk=int(cfg["num_experts_per_tok"]),
        moe_ffn_hidden_size=int(cfg["moe_intermediate_size"]),
        norm_topk_prob=bool(cfg.get("norm_topk_prob", False)),
        router_aux_loss_coef=float(cfg.get("router_aux_loss_coef", 0.001)),
    )


def _moe_config(arch: ModelArchitecture) -> dict:
    """megatron's MoE settings for Qwen3-MoE routing, as HF computes it: softmax over all the
    experts' logits, the top k, renormalised to sum 1 when `norm_topk_prob`. megatron's default
    (top k of the logits, then a softmax over those k) is that renormalised form;
    `moe_router_pre_softmax` is the other (softmax over all, top k kept as they are)."""
    return dict(
        num_moe_experts=arch.num_experts,
        moe_router_topk=arch.moe_router_topk,
        moe_ffn_hidden_size=arch.moe_ffn_hidden_size,
        moe_router_pre_softmax=not arch.norm_topk_prob,
        moe_router_score_function="softmax",
        moe_router_load_balancing_type="aux_loss",
        moe_aux_loss_coeff=arch.router_aux_loss_coef,
        moe_token_dispatcher_type="alltoall",
        # experts' GEMMs grouped by TE on the GPU (the TE spec's layout); one by one otherwise
        moe_grouped_gemm=False,
        # TE's fused permute needs CUDA
        moe_permute_fusion=False,
    )


def transformer_config(
    arch: ModelArchitecture,
    *,
    tensor_model_parallel_size: int = 1,
    pipeline_model_parallel_size: int = 1,
    virtual_pipeline_model_parallel_size: int | None = None,
    sequence_parallel: bool = False,
    params_dtype: torch.dtype = torch.float32,
    batch_p2p_comm: bool = True,
    use_cpu_initialization: bool | None = None,
    recompute_activations: bool = False,
    **overrides,
):
    """Megatron `TransformerConfig` for `arch` under the given parallel layout.

    Fused kernels are enabled only where they exist (CUDA); on the CPU every fusion is off.
    `use_cpu_initialization=None` means: on the CPU, and always deterministic across TP sizes.
    """
    from megatron.core.transformer import TransformerConfig

    cuda = torch.cuda.is_available()
    bf16 = params_dtype == torch.bfloat16
    kwargs = dict(
        num_layers=arch.num_layers,
        hidden_size=arch.hidden_size,
        ffn_hidden_size=arch.ffn_hidden_size,
        num_attention_heads=arch.num_attention_heads,
        num_query_groups=arch.num_query_groups,
        kv_channels=arch.kv_channels,
        normalization="RMSNorm",
        layernorm_epsilon=arch.rms_norm_eps,
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        add_qkv_bias=arch.add_qkv_bias,
        qk_layernorm=arch.qk_layernorm,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tensor_model_parallel_size=tensor_model_parallel_size,
        pipeline_model_parallel_size=pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=virtual_pipeline_model_parallel_size,
        sequence_parallel=sequence_parallel,
        params_dtype=params_dtype,
        pipeline_dtype=params_dtype,
        bf16=bf16,
        fp16=params_dtype == torch.float16,
        batch_p2p_comm=batch_p2p_comm,
        use_cpu_initialization=(not cuda)
        if use_cpu_initialization is None
        else use_cpu_initialization,
        init_method_std=0.02,
        # Fusions: megatron's kernels need CUDA (and apex/TE for some); keep them to the GPU.
        masked_softmax_fusion=cuda,
        bias_activation_fusion=cuda,
        bias_dropout_fusion=cuda,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
        persist_layer_norm=False,
        # NOTE: the native fused CE casts grads to the logits dtype; our loss reads logits.
        cross_entropy_loss_fusion=False,
        # Our loss functions return (sum, count); megatron normalises gradients by the step's
        # global count (all micro-batches and data-parallel ranks), keeping means exact.
        calculate_per_token_loss=True,
    )
    if arch.is_moe:
        kwargs.update(_moe_config(arch))
    if recompute_activations:
        kwargs.update(recompute_granularity="selective")
    kwargs.update(overrides)
    return TransformerConfig(**kwargs)
