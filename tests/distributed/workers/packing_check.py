"""Worker for tests/distributed/test_packing.py: one step of packed micro-batches gives the loss
and every gradient of the same step padded, for each loss, through megatron's schedule.

    python packing_check.py                                   # TP=1, one process
    torchrun --nproc-per-node 2 packing_check.py TP PP

Prints one line per loss: `LOSS: micro_batches=PADDED/PACKED loss_err=.. grad_err=.. scale=..`.
"""

import sys

import torch

from megatron_o1p.config.loss import LossConfig
from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0, shutdown
from megatron_o1p.models.builder import ModelOptions, build_gpt_chunks
from megatron_o1p.models.hf_config import architecture_from_dict
from megatron_o1p.training.data import StepBatches, make_sequence, pack_capacity, padding_rule
from megatron_o1p.training.forward_step import forward_backward, make_forward_step
from tests.helpers.gather import gather_full

# Qwen3-like: q/k norms and head_dim 32 != hidden / heads, untied, GQA 4/2.
ARCH = architecture_from_dict(dict(
    model_type="qwen3", vocab_size=1000, hidden_size=64, intermediate_size=128, head_dim=32,
    num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
))  # fmt: skip
SEQ, ROWS, MICRO = 32, 8, 2
LOSSES = {
    "o1-pruner seq-mean": LossConfig(loss="o1-pruner", loss_aggregation="seq-mean"),
    "o1-pruner token-mean": LossConfig(loss="o1-pruner", loss_aggregation="token-mean"),
    "sft": LossConfig(loss="sft"),
    "dpo": LossConfig(loss="dpo"),
}


def rows_for(loss: str) -> list[list]:
    """Random rows of 4-36 tokens (some cut at SEQ + 1), as training reads them."""
    g = torch.Generator().manual_seed(3)

    def ids(low, high):
        n = int(torch.randint(low, high, (1,), generator=g))
        return torch.randint(0, ARCH.vocab_size, (n,), generator=g).tolist()

    rows = []
    for _ in range(ROWS):
        prompt = ids(2, 6)
        if loss == "dpo":
            rows.append([make_sequence(prompt, ids(2, 30), SEQ, ref_seq_logprob=-40.0 + i)
                         for i in range(2)])  # fmt: skip
            continue
        response = ids(2, 31)
        ref = (-6.9 + 0.2 * torch.randn(len(response), generator=g)).tolist()
        advantage = float(torch.randn(1, generator=g))
        rows.append([make_sequence(prompt, response, SEQ, ref_logprobs=ref, advantage=advantage)])
    return rows


def step(chunks, state, cfg, micro_batches):
    """(loss, gradients) of one step: megatron's schedule, then what finalize_model_grads does
    with calculate_per_token_loss (divide the summed grads by the step's total count)."""
    for chunk in chunks:
        chunk.zero_grad(set_to_none=True)
    forward_step = make_forward_step(cfg, state, vocab_size=ARCH.vocab_size)
    reports = forward_backward(forward_step, chunks, micro_batches)
    total = torch.zeros(2)
    if state.is_last_stage:
        total = torch.stack([r["loss"] for r in reports]).sum(0)
    torch.distributed.all_reduce(total, group=state.pp_group)
    grads = {k: v / total[1] for k, v in gather_full(chunks, grads=True).items()}
    return (total[0] / total[1]).item(), grads


def main():
    from megatron.core import tensor_parallel

    tp, pp = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (1, 1)
    state = initialize(
        ParallelConfig(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    )
    torch.manual_seed(5)
    tensor_parallel.model_parallel_cuda_manual_seed(5)
    chunks = build_gpt_chunks(ARCH, state, ModelOptions(spec="local", seq_length=4 * SEQ))
    pad_multiple, fixed = padding_rule(tp, pp > 1, SEQ)
    for name, cfg in LOSSES.items():
        rows = rows_for(cfg.loss)
        batches = StepBatches(rows, ROWS, MICRO, dp_rank=0, dp_size=1, seed=0)
        capacity = pack_capacity(SEQ, MICRO, len(rows[0]))
        padded = batches.micro_batches(0, pad_multiple, fixed)
        packed = batches.micro_batches(0, pad_multiple, capacity if pp > 1 else None, capacity)
        assert all(b["tokens"].shape[0] == 1 for b in packed)
        padded_loss, padded_grads = step(chunks, state, cfg, padded)
        packed_loss, packed_grads = step(chunks, state, cfg, packed)
        assert padded_grads.keys() == packed_grads.keys()
        grad_err = max((packed_grads[k] - padded_grads[k]).abs().max().item() for k in padded_grads)
        scale = max(v.abs().max().item() for v in padded_grads.values())
        print0(f"{name}: micro_batches={len(padded)}/{len(packed)} loss={padded_loss:.6f} "
               f"loss_err={abs(packed_loss - padded_loss):.3e} grad_err={grad_err:.3e} "
               f"scale={scale:.3e}")  # fmt: skip
    shutdown()


if __name__ == "__main__":
    main()
