"""Worker for tests/distributed/test_logprobs_fused_head.py: `head_token_logprobs` (fused-head)
against fp64 `log_softmax(hidden @ weight.T).gather` and against `chunked` on the materialised
logits, at TP = world size (gloo).

    torchrun --nproc-per-node {1,2,4} logprobs_fused_head_check.py

Each rank holds its [V_padded/TP, h] rows of the weight; the hidden states go through megatron's
`copy_to_tensor_model_parallel_region` (as in the output layer), so their gradient is the TP
all-reduced one. Vocab sizes 1000 and 700 of a padded 1024 leave padding rows (at TP=4 with 700
a shard that is all padding). fp32 and bf16. Prints one line of max errors per case and
`checks passed: N` on success. Gradient errors are relative to the largest reference entry.
The bf16 reference rounds the logits to bf16 as the model does; `exact fp64` does not.
"""

import torch

from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0, shutdown
from megatron_o1p.ops.logprobs import head_token_logprobs, token_logprobs

PADDED_VOCAB, HIDDEN = 1024, 32
# Tolerances against fp64 of the same (rounded) logits; the bf16 gradients are bf16 numbers.
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1e-5, 2e-2)}


def reference(hidden, weight, targets, vocab_size, weights, rounded=True):
    """fp64 (logp, d hidden, d weight) of sum(w * logp); `rounded`: the logits take the
    values the model's dtype gives them (fp64 gradients all the same)."""
    h = hidden.double().requires_grad_()
    w = weight.double().requires_grad_()
    logits = exact = h @ w.t()
    if rounded:
        logits = exact + ((hidden @ weight.t()).double() - exact).detach()
    logp = torch.log_softmax(logits[..., :vocab_size], -1).gather(-1, targets[..., None])[..., 0]
    (logp * weights).sum().backward()
    return logp.detach(), h.grad, w.grad


def run(impl, hidden, shard_weight, targets, vocab_size, weights, tp_group):
    from megatron.core.tensor_parallel import copy_to_tensor_model_parallel_region

    h = hidden.clone().requires_grad_()
    w = shard_weight.clone().requires_grad_()
    h_in = copy_to_tensor_model_parallel_region(h)  # all-reduce of d hidden over TP
    if impl == "fused-head":
        logp = head_token_logprobs(
            h_in, w, targets, tp_group=tp_group, vocab_size=vocab_size, chunk_cols=50
        )
    else:
        logp = token_logprobs(h_in @ w.t(), targets, tp_group=tp_group, vocab_size=vocab_size)
    (logp.double() * weights).sum().backward()
    return logp.detach(), h.grad, w.grad


def _err(a, b):
    return (a.double() - b.double()).abs().max().item()


def main():
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    state = initialize(ParallelConfig(tensor_model_parallel_size=world))
    tp, rank = state.tp_size, state.tp_rank
    tp_group = state.tp_group if tp > 1 else None
    rows = slice(rank * PADDED_VOCAB // tp, (rank + 1) * PADDED_VOCAB // tp)
    checks = 0
    for vocab_size in (1000, 700):
        g = torch.Generator().manual_seed(vocab_size)
        full_hidden = torch.randn(2, 7, HIDDEN, generator=g)
        full_weight = torch.randn(PADDED_VOCAB, HIDDEN, generator=g) * 0.5
        targets = torch.randint(0, vocab_size, (2, 7), generator=g)
        targets[0, :2] = torch.tensor([0, vocab_size - 1])
        weights = torch.randn(2, 7, generator=g).double()
        for dtype in (torch.float32, torch.bfloat16):
            hidden, weight = full_hidden.to(dtype), full_weight.to(dtype)
            ref_logp, ref_hidden, ref_weight = reference(
                hidden, weight, targets, vocab_size, weights
            )
            args = (hidden, weight[rows], targets, vocab_size, weights, tp_group)
            logp, d_hidden, d_weight = run("fused-head", *args)
            assert logp.dtype == torch.float32 and d_weight.dtype == dtype
            errors = (
                _err(logp, ref_logp),
                _err(d_hidden, ref_hidden) / max(1.0, ref_hidden.abs().max().item()),
                _err(d_weight, ref_weight[rows]) / max(1.0, ref_weight.abs().max().item()),
            )
            value_tol, grad_tol = TOLERANCE[dtype]
            where = f"fused-head {str(dtype)[6:]} V={vocab_size} TP={tp}"
            assert errors[0] < value_tol, f"{where}: logp err {errors[0]}"
            assert max(errors[1:]) < grad_tol, f"{where}: grad errs {errors[1:]}"
            exact = _err(logp, reference(hidden, weight, targets, vocab_size, weights, False)[0])
            chunked = run("chunked", *args)
            same = [_err(a, b) for a, b in zip((logp, d_hidden, d_weight), chunked)]
            assert same[0] < value_tol, f"{where}: vs chunked logp {same[0]}"
            print0(
                f"{where}: |logp - fp64| {errors[0]:.2e}  |d hidden - fp64| {errors[1]:.2e}  "
                f"|d weight - fp64| {errors[2]:.2e}  |logp - exact fp64| {exact:.2e}  "
                f"vs chunked: {same[0]:.2e} "
                f"{same[1]:.2e} {same[2]:.2e}"
            )
            checks += 1
    print0(f"checks passed: {checks} (TP={tp})")
    shutdown()


if __name__ == "__main__":
    main()
