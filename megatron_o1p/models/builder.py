"""Build this rank's megatron `GPTModel` chunk(s) for a `ModelArchitecture`.

Tested by tests/distributed/test_verify.py and tests/distributed/test_tp_checkpoint.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from megatron_o1p.models import specs
from megatron_o1p.models.hf_config import ModelArchitecture, transformer_config


@dataclass(frozen=True)
class ModelOptions:
    """How to build the model; the architecture itself comes from the checkpoint."""

    spec: str = "local"
    """Resolved layer spec: "te" or "local" (see `specs.resolve_spec_name`)."""
    padded_vocab_size: int | None = None
    """Rows of the embedding/output layer; None = arch.padded_vocab_size()."""
    params_dtype: torch.dtype = torch.float32
    seq_length: int = 4096
    """Max sequence length the model is used with (RoPE cache size)."""
    recompute_activations: bool = False
    meta_device: bool = False
    """Build on torch's meta device: shapes and checkpoint layout only, no memory."""


def build_gpt_chunks(arch: ModelArchitecture, state, options: ModelOptions) -> list:
    """This rank's model chunks (one, or one per virtual pipeline stage), on `state.device`.

    Args:
        arch: the model's architecture (from config.json or a checkpoint).
        state: `distributed.initialize.ParallelState` of this process.
        options: spec, dtype, vocab padding.
    """
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel
    from megatron.core.transformer.transformer_block import (
        TransformerBlockSubmodules,
        get_num_layers_to_build,
    )

    pcfg = state.config
    padded_vocab = options.padded_vocab_size or arch.padded_vocab_size()
    arch.check_tensor_parallel(pcfg.tensor_model_parallel_size, padded_vocab)
    arch.check_pipeline_parallel(
        pcfg.pipeline_model_parallel_size, pcfg.virtual_pipeline_model_parallel_size
    )
    config = _transformer_config(arch, pcfg, options)
    arch.check_expert_parallel(
        pcfg.expert_model_parallel_size, etp=pcfg.expert_tensor_parallel_size
    )
    layer = specs.layer_spec(
        options.spec,
        sequence_parallel=pcfg.sequence_parallel,
        qk_layernorm=arch.qk_layernorm,
        num_experts=arch.num_experts,
    )
    final_norm = specs.final_norm_override(options.spec, pcfg.sequence_parallel)
    vpp = pcfg.virtual_pipeline_model_parallel_size
    chunks = []
    for vp_stage in range(vpp or 1):
        stage = vp_stage if vpp else None
        block_spec = layer
        if final_norm is not None:
            block_spec = TransformerBlockSubmodules(
                layer_specs=[layer] * get_num_layers_to_build(config, vp_stage=stage),
                layer_norm=final_norm,
            )
        kwargs = {"vp_stage": stage} if vpp else {}
        device = torch.device("meta") if options.meta_device else state.device
        with device:
            model = GPTModel(
                config=config,
                transformer_layer_spec=block_spec,
                vocab_size=padded_vocab,
                max_sequence_length=max(options.seq_length, 1),
                pre_process=parallel_state.is_pipeline_first_stage(
                    ignore_virtual=vpp is None, vp_stage=stage
                ),
                post_process=parallel_state.is_pipeline_last_stage(
                    ignore_virtual=vpp is None, vp_stage=stage
                ),
                share_embeddings_and_output_weights=arch.tie_word_embeddings,
                position_embedding_type="rope",
                rotary_base=int(arch.rope_theta)
                if float(arch.rope_theta).is_integer()
                else arch.rope_theta,
                rope_scaling=arch.llama3_rope_factor is not None,
                rope_scaling_factor=arch.llama3_rope_factor or 8.0,
                **kwargs,
            )
        chunks.append(model)
    return chunks


def _transformer_config(arch: ModelArchitecture, pcfg, options: ModelOptions):
    """megatron's TransformerConfig for this architecture, layout (`pcfg`) and options."""
    return transformer_config(
        arch,
        tensor_model_parallel_size=pcfg.tensor_model_parallel_size,
        pipeline_model_parallel_size=pcfg.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=pcfg.virtual_pipeline_model_parallel_size,
        sequence_parallel=pcfg.sequence_parallel,
        params_dtype=options.params_dtype,
        batch_p2p_comm=pcfg.batch_p2p_comm,
        recompute_activations=options.recompute_activations,
        expert_model_parallel_size=pcfg.expert_model_parallel_size,
        expert_tensor_parallel_size=pcfg.expert_tensor_parallel_size,
        # TE's spec groups the experts' GEMMs (its checkpoint keys are the sequential ones)
        **({"moe_grouped_gemm": options.spec == "te"} if arch.is_moe else {}),
        **(
            {"perform_initialization": False, "use_cpu_initialization": True}
            if options.meta_device
            else {}
        ),
    )
