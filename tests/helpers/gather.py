"""Gather a TP/PP-sharded megatron model's parameters (or grads) into TP=1/PP=1 names and shapes,
so a parallel run can be compared with a single-process reference."""

from __future__ import annotations

import torch
import torch.distributed as dist


def gather_full(
    chunks: list, grads: bool = False, grad_attr: str = "grad"
) -> dict[str, torch.Tensor]:
    """{TP=1/PP=1 parameter name: full fp32 tensor}, the same on every rank. With `grads`,
    the gradients: `param.grad`, or megatron DDP's buffer with `grad_attr="main_grad"`."""
    from megatron.core import parallel_state
    from megatron.core.transformer.transformer_layer import get_transformer_layer_offset

    tp = parallel_state.get_tensor_model_parallel_world_size()
    virtual = len(chunks) > 1
    mine = {}
    for index, chunk in enumerate(chunks):
        chunk = getattr(chunk, "module", chunk)
        offset = get_transformer_layer_offset(chunk.config, vp_stage=index if virtual else None)
        for name, param in chunk.named_parameters():
            tensor = getattr(param, grad_attr) if grads else param
            tensor = tensor.detach().float().contiguous()
            if getattr(param, "tensor_model_parallel", False) and tp > 1:
                parts = [torch.empty_like(tensor) for _ in range(tp)]
                dist.all_gather(
                    parts, tensor, group=parallel_state.get_tensor_model_parallel_group()
                )
                dim = param.partition_dim
                if "linear_fc1" in name and chunk.config.gated_linear_unit:
                    # each rank holds [gate_r; up_r]; TP=1 is [gate; up]
                    halves = [p.chunk(2, dim) for p in parts]
                    tensor = torch.cat([h[0] for h in halves] + [h[1] for h in halves], dim)
                else:
                    tensor = torch.cat(parts, dim)
            if name.startswith("decoder.layers."):
                bits = name.split(".")
                bits[2] = str(int(bits[2]) + offset)
                name = ".".join(bits)
            mine[name] = tensor
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    merged = {}
    for part in everyone:
        merged.update(part)
    return merged
