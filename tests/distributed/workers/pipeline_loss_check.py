"""Worker for tests/distributed/test_pipeline_loss.py: the O1-Pruner loss through megatron's
schedules (micro-batches, TP, PP) equals a single-process reference, loss and gradients.

    python pipeline_loss_check.py reference OUT LOSS AGGREGATION IMPL
    torchrun --nproc-per-node N pipeline_loss_check.py parallel OUT LOSS AGGREGATION IMPL TP PP
"""

import sys
from pathlib import Path

import torch

from megatron_o1p.checkpoint.reader import load_into_model
from megatron_o1p.checkpoint.saving import save_model
from megatron_o1p.config.loss import LossConfig
from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0, shutdown
from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
from megatron_o1p.models.hf_config import architecture_from_dict
from megatron_o1p.training.forward_step import compute_loss, forward_backward, make_forward_step
from tests.helpers.gather import gather_full

ARCH = architecture_from_dict(dict(
    model_type="qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128,
    num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
))  # fmt: skip
BATCH, SEQ, MICRO = 4, 16, 2


def make_batch():
    g = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, ARCH.vocab_size, (BATCH, SEQ), generator=g)
    loss_mask = (torch.rand(BATCH, SEQ, generator=g) > 0.3).float()
    loss_mask[:, :2] = 0  # a "prompt"
    loss_mask[:, 2] = 1
    return {
        "tokens": tokens,
        "position_ids": torch.arange(SEQ).expand(BATCH, SEQ),
        "targets": torch.roll(tokens, -1, 1),
        "loss_mask": loss_mask,
        "ref_logprobs": -7.0 + 0.3 * torch.randn(BATCH, SEQ, generator=g),
        "advantages": torch.randn(BATCH, generator=g),
        "ref_seq_logprobs": -50.0 + torch.randn(BATCH, generator=g),
    }


def build(state):
    from megatron.core import tensor_parallel

    torch.manual_seed(5)
    tensor_parallel.model_parallel_cuda_manual_seed(5)
    return build_gpt_chunks(ARCH, state, ModelOptions(spec="local", seq_length=SEQ))


META = {"spec": "local", "architecture": ARCH.to_json(), "dtype": "float32",
        "padded_vocab_size": ARCH.padded_vocab_size()}  # fmt: skip


def main():
    phase, out, loss_name, aggregation, impl = sys.argv[1:6]
    out = Path(out)
    cfg = LossConfig(loss=loss_name, loss_aggregation=aggregation, logprob_impl=impl)
    batch = make_batch()
    if phase == "reference":
        state = initialize(ParallelConfig())
        (model,) = build(state)
        # Pipeline stages initialise only their own layers, so the parallel run loads these
        # exact weights from a checkpoint rather than rebuilding them from the seed.
        save_model([model], out / "ckpt", iteration=1, meta=META)
        logits = model(batch["tokens"], batch["position_ids"], None)
        loss_sum, count, _ = compute_loss(cfg, batch, logits, vocab_size=ARCH.vocab_size)
        (loss_sum / count).backward()
        torch.save({"loss": (loss_sum / count).item(), "grads": gather_full([model], grads=True)},
                   out / f"reference_{loss_name}_{aggregation}.pt")  # fmt: skip
        shutdown()
        return
    tp, pp = int(sys.argv[6]), int(sys.argv[7])
    state = initialize(
        ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    )
    chunks = build(state)
    load_into_model(chunks, out / "ckpt")
    if cfg.loss == "dpo":  # keep each (chosen, rejected) pair inside one micro-batch
        order = [0, 2, 1, 3]
        batch = {k: v[order] for k, v in batch.items()}
    micro_batches = [
        {k: v[i : i + MICRO] for k, v in batch.items()} for i in range(0, BATCH, MICRO)
    ]
    forward_step = make_forward_step(cfg, state, vocab_size=ARCH.vocab_size)
    reports = forward_backward(forward_step, chunks, micro_batches)
    # What megatron's finalize_model_grads does with calculate_per_token_loss: divide the summed
    # gradients by the step's total count (here: from the reports on the last stage).
    total = torch.zeros(2)
    if state.is_last_stage:
        total = torch.stack([r["loss"] for r in reports]).sum(0)
    torch.distributed.all_reduce(total, group=state.pp_group)
    for chunk in chunks:
        for param in chunk.parameters():
            param.grad /= total[1]
    grads = gather_full(chunks, grads=True)
    reference = torch.load(out / f"reference_{loss_name}_{aggregation}.pt", weights_only=True)
    loss_err = abs(total[0].item() / total[1].item() - reference["loss"])
    assert grads.keys() == reference["grads"].keys(), set(grads) ^ set(reference["grads"])
    grad_err = max((grads[k] - reference["grads"][k]).abs().max().item() for k in grads)
    scale = max(v.abs().max().item() for v in reference["grads"].values())
    print0(f"loss={reference['loss']:.6f} loss_err={loss_err:.3e} grad_err={grad_err:.3e} "
           f"grad_scale={scale:.3e}")  # fmt: skip
    shutdown()


if __name__ == "__main__":
    main()
