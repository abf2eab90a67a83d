"""Worker for tests/distributed/test_fused_head_model.py: `--logprob-impl fused-head` through the
real model and megatron's schedule gives the loss and every gradient of `chunked` on the same
model chunks (tied and untied embeddings, fp32 and bf16).

    torchrun --nproc-per-node N fused_head_model_check.py TP PP [sp]

As `o1p train` runs it: megatron DDP (fp32 grad buffers), `finalize_model_grads` as the
schedule's finalize hook (the per-token scaling, and at PP > 1 with tied embeddings the
all-reduce of the embedding's gradient with the last stage's tied copy), the output layer
wrapped by `batch_first_output_layer` (logits at the loss span for chunked, hidden states and
the weight for fused-head). The gradients compared are the DDP buffers (`main_grad`) gathered
to TP=1/PP=1 names. Prints `case ... loss_err=... grad_err=... grad_scale=...` per case.
"""

import sys

import torch

from megatron_o1p.config.loss import LossConfig
from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0, shutdown
from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
from megatron_o1p.models.hf_config import architecture_from_dict
from megatron_o1p.ops import logprobs_fused_head
from megatron_o1p.training.forward_step import forward_backward, make_forward_step
from megatron_o1p.training.output_layout import batch_first_output_layer
from tests.helpers.gather import gather_full

BATCH, SEQ, MICRO = 4, 16, 2
# Chunks of 128 vocab columns (the default would take this tiny vocab in one chunk), so the
# online log-sum-exp and the gradient accumulation over chunks run inside the model too.
logprobs_fused_head._CHUNK_VALUES = 1 << 10


def arch(tied: bool):
    return architecture_from_dict(dict(
        model_type="qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        tie_word_embeddings=tied,
    ))  # fmt: skip


def make_batch(vocab_size: int):
    g = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, vocab_size, (BATCH, SEQ), generator=g)
    loss_mask = (torch.rand(BATCH, SEQ, generator=g) > 0.3).float()
    loss_mask[:, :3] = 0  # a "prompt": the loss span starts later
    loss_mask[:, 3] = 1
    return {
        "tokens": tokens,
        "position_ids": torch.arange(SEQ).expand(BATCH, SEQ),
        "targets": torch.roll(tokens, -1, 1),
        "loss_mask": loss_mask,
        "ref_logprobs": -7.0 + 0.3 * torch.randn(BATCH, SEQ, generator=g),
        "advantages": torch.randn(BATCH, generator=g),
    }


def build(state, architecture, dtype):
    from megatron.core import tensor_parallel
    from megatron.core.distributed import (
        DistributedDataParallel,
        DistributedDataParallelConfig,
        finalize_model_grads,
    )

    torch.manual_seed(5)
    tensor_parallel.model_parallel_cuda_manual_seed(5)
    options = ModelOptions(spec="local", seq_length=SEQ, params_dtype=dtype)
    chunks = build_gpt_chunks(architecture, state, options)
    ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=True)
    ddp = [
        DistributedDataParallel(config=c.config, ddp_config=ddp_config, module=c) for c in chunks
    ]
    chunks[0].config.no_sync_func = ddp[0].no_sync
    chunks[0].config.finalize_model_grads_func = finalize_model_grads
    return ddp


def step(ddp, state, impl, architecture):
    """(mean loss, {name: full gradient}) of one step with `impl`."""
    batch_first_output_layer(ddp, fused_head=impl == "fused-head")
    for chunk in ddp:
        chunk.zero_grad_buffer()
    batch = make_batch(architecture.vocab_size)
    micro_batches = [
        {k: v[i : i + MICRO] for k, v in batch.items()} for i in range(0, BATCH, MICRO)
    ]
    cfg = LossConfig(logprob_impl=impl)
    forward_step = make_forward_step(cfg, state, vocab_size=architecture.vocab_size)
    reports = forward_backward(forward_step, ddp, micro_batches)
    total = torch.zeros(2)
    if state.is_last_stage:
        total = torch.stack([r["loss"] for r in reports]).sum(0)
    torch.distributed.all_reduce(total, group=state.pp_group)
    return (total[0] / total[1]).item(), gather_full(ddp, grads=True, grad_attr="main_grad")


def main():
    tp, pp = int(sys.argv[1]), int(sys.argv[2])
    sp = "sp" in sys.argv[3:]
    state = initialize(
        ParallelConfig(
            tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, sequence_parallel=sp
        )
    )
    for tied in (False, True):
        for dtype in (torch.float32, torch.bfloat16):
            architecture = arch(tied)
            ddp = build(state, architecture, dtype)
            loss_ref, grads_ref = step(ddp, state, "chunked", architecture)
            loss, grads = step(ddp, state, "fused-head", architecture)
            assert grads.keys() == grads_ref.keys(), set(grads) ^ set(grads_ref)
            head = "embedding.word_embeddings.weight" if tied else "output_layer.weight"
            assert grads[head].abs().max() > 0, f"no gradient reached {head}"
            if tied and pp > 1:  # the last stage's tied copy got the all-reduced gradient
                assert torch.equal(grads["output_layer.weight"], grads[head])
            grad_err = max((grads[k] - grads_ref[k]).abs().max().item() for k in grads)
            head_err = (grads[head] - grads_ref[head]).abs().max().item()
            scale = max(v.abs().max().item() for v in grads_ref.values())
            print0(
                f"case tied={tied} dtype={str(dtype)[6:]} TP={tp} PP={pp} SP={sp}: "
                f"loss={loss_ref:.6f} loss_err={abs(loss - loss_ref):.3e} "
                f"grad_err={grad_err:.3e} head_grad_err={head_err:.3e} grad_scale={scale:.3e}"
            )
    shutdown()


if __name__ == "__main__":
    main()
