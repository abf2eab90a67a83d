"""The transformer layer recipe: Transformer Engine's spec when TE works, megatron's local spec
otherwise. The only module that knows Transformer Engine exists.

With `qk_layernorm` (Qwen3) both specs add `self_attention.q_layernorm` / `k_layernorm`, under
the same names in both (TENorm, or torch's RMSNorm over one head's `kv_channels`).

Packed sequences (`training/packing.py`, megatron's THD layout): TE's attention reads
`PackedSeqParams` itself; the local spec's core attention is `segment_attention.
SegmentCausalAttention`, megatron's `DotProductAttention` run per segment.

The two specs name the norms differently (see `state_dict_adapter.py`): TE fuses the
pre-attention and pre-MLP RMSNorm into `linear_qkv` / `linear_fc1` (`layer_norm_weight`), the
local spec keeps `input_layernorm` / `pre_mlp_layernorm` modules.

Tested by tests/unit/models/test_state_dict_adapter.py and tests/distributed/test_verify.py.
"""

from __future__ import annotations

import functools

import torch

from megatron_o1p.config.choices import SPEC_NAMES
from megatron_o1p.errors import ConfigError, SetupError


@functools.lru_cache(maxsize=1)
def transformer_engine_usable() -> bool:
    """True when TE imports and CUDA is present.

    NOTE: on a CPU-only machine `import transformer_engine` raises RuntimeError (not
    ImportError), hence the broad except.
    """
    if not torch.cuda.is_available():
        return False
    try:
        import transformer_engine.pytorch  # noqa: F401
    except Exception:
        return False
    return True


def buildable_spec() -> str:
    """The spec a model can be built with here: "te" with TE and CUDA, else "local"."""
    return "te" if transformer_engine_usable() else "local"


def resolve_spec_name(name: str = "auto") -> str:
    """Map "auto" to "te" or "local"; refuse "te" where TE cannot run."""
    if name not in SPEC_NAMES:
        raise ConfigError(f"unknown --spec {name!r}; choose one of {', '.join(SPEC_NAMES)}")
    if name == "auto":
        return buildable_spec()
    if name == "te" and not transformer_engine_usable():
        raise SetupError(
            "--spec te needs Transformer Engine and CUDA, neither usable here; use --spec local "
            "(checkpoints remap between specs on load)"
        )
    return name


class SequenceParallelRMSNorm:
    """torch RMSNorm usable under sequence parallelism (local spec).

    megatron's `WrappedTorchNorm` refuses `sequence_parallel`. Under SP a norm sees a sequence
    shard, so its weight grad is partial per TP rank; tagging the parameter `sequence_parallel`
    makes megatron's `finalize_model_grads` all-reduce it over TP.
    """

    def __new__(cls, config, hidden_size: int, eps: float = 1e-5, **kwargs):
        norm = torch.nn.RMSNorm(hidden_size, eps=eps, dtype=config.params_dtype)
        for param in norm.parameters():
            param.sequence_parallel = bool(config.sequence_parallel)
        return norm


class HeadRMSNorm:
    """torch RMSNorm over one attention head (q/k layernorm), usable under sequence parallelism.

    megatron's `WrappedTorchNorm` refuses `sequence_parallel` even here, where the input is
    not a sequence shard (`linear_qkv` has gathered the sequence): the weight is shared by this
    rank's heads only, and megatron's `finalize_model_grads` sums the grads of every
    `q_layernorm`/`k_layernorm` parameter over TP (by name), so no tag is needed.
    """

    def __new__(cls, config, hidden_size: int, eps: float = 1e-5, **kwargs):
        return torch.nn.RMSNorm(hidden_size, eps=eps, dtype=config.params_dtype)


def layer_spec(
    name: str,
    *,
    sequence_parallel: bool = False,
    qk_layernorm: bool = False,
    num_experts: int | None = None,
):
    """The `ModuleSpec` of one GPT layer for spec `name` ("te" or "local").

    Args:
        qk_layernorm: add a per-head RMSNorm on queries and keys (Qwen3).
        num_experts: a mixture-of-experts MLP (router + experts) instead of the dense one:
            TE's grouped GEMM experts (`mlp.experts.linear_fc1.weight{e}`) or megatron's
            sequential ones (`mlp.experts.local_experts.{e}.linear_fc1.weight`).
    """
    from megatron.core.models.gpt import gpt_layer_specs

    if name == "te":
        return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec(
            num_experts=num_experts, moe_grouped_gemm=num_experts is not None,
            qk_layernorm=qk_layernorm,
        )  # fmt: skip
    if name != "local":
        raise ConfigError(f"unknown layer spec {name!r}")
    from megatron_o1p.models.segment_attention import SegmentCausalAttention

    if num_experts is not None:
        _define_names_megatron_leaves_out_without_te()
    spec = gpt_layer_specs.get_gpt_layer_local_spec(
        normalization="RMSNorm", qk_layernorm=qk_layernorm, num_experts=num_experts
    )
    # Packed rows (--pack-sequences): megatron's local core attention refuses THD.
    spec.submodules.self_attention.submodules.core_attention = SegmentCausalAttention
    if num_experts is not None:
        # TE's MoE layer keeps the pre-MLP norm as a module of its own (no fc1 to fuse it
        # into): the local spec's map to `mlp.linear_fc1.layer_norm_` would name it apart
        # from TE's, and its checkpoints would not load into the TE spec.
        spec.submodules.sharded_state_dict_keys_map = {
            "input_layernorm.": "self_attention.linear_qkv.layer_norm_"
        }
    if sequence_parallel:
        spec.submodules.input_layernorm = SequenceParallelRMSNorm
        spec.submodules.pre_mlp_layernorm = SequenceParallelRMSNorm
        if qk_layernorm:
            attention = spec.submodules.self_attention.submodules
            attention.q_layernorm = HeadRMSNorm
            attention.k_layernorm = HeadRMSNorm
    return spec


def _define_names_megatron_leaves_out_without_te() -> None:
    # megatron-core 0.16.1 `moe_utils.py` imports `te_general_gemm` from TE inside a try and
    # never defines it when TE is missing; the router's forward then tests `te_general_gemm is
    # not None` and raises NameError. None is what that test means (use torch.mm).
    import megatron.core.transformer.moe.moe_utils as moe_utils

    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None


def final_norm_override(name: str, sequence_parallel: bool):
    """The final-norm class to force on the block, or None to keep the spec's default."""
    return SequenceParallelRMSNorm if (name == "local" and sequence_parallel) else None
