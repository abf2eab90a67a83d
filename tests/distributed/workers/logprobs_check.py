"""Worker for tests/distributed/test_logprobs.py: every `token_logprobs` implementation against an
fp64 `log_softmax(...).gather` reference, at TP = world size (gloo).

    TRITON_INTERPRET=1 torchrun --nproc-per-node {1,2,4} logprobs_check.py

Covers: values and gradients, fp32 and bf16 logits, vocab sizes that leave padded columns (and,
at TP=4 with vocab 700, a shard that is all padding), in-place backward, logits untouched for
the caller, and token entropy. Prints `checks passed: N` on success.
"""

import torch

from megatron_o1p.distributed.initialize import ParallelConfig, initialize, print0, shutdown
from megatron_o1p.ops.logprobs import IMPLEMENTATIONS, token_entropy, token_logprobs

PADDED_VOCAB = 1024


def reference(full: torch.Tensor, targets, vocab_size, weights):
    """fp64 log p(target) over the unpadded columns, and d(sum(w * logp)) / d logits."""
    x = full.double().requires_grad_()
    logp = torch.log_softmax(x[..., :vocab_size], -1).gather(-1, targets[..., None]).squeeze(-1)
    (logp * weights).sum().backward()
    probs = torch.softmax(x.detach()[..., :vocab_size], -1)
    entropy = -(probs * probs.log()).sum(-1)
    return logp.detach(), x.grad, entropy


def main():
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    state = initialize(ParallelConfig(tensor_model_parallel_size=world))
    tp, rank = state.tp_size, state.tp_rank
    tp_group = state.tp_group if tp > 1 else None
    width = PADDED_VOCAB // tp
    columns = slice(rank * width, (rank + 1) * width)
    checks = 0
    for vocab_size in (1000, 700):
        g = torch.Generator().manual_seed(vocab_size)
        full = torch.randn(2, 7, PADDED_VOCAB, generator=g) * 3
        targets = torch.randint(0, vocab_size, (2, 7), generator=g)
        weights = torch.randn(2, 7, generator=g).double()
        for dtype in (torch.float32, torch.bfloat16):
            rounded = full.to(dtype)
            ref_logp, ref_grad, ref_entropy = reference(rounded, targets, vocab_size, weights)
            entropy = token_entropy(rounded[..., columns], tp_group=tp_group, vocab_size=vocab_size)
            assert (entropy.double() - ref_entropy).abs().max() < 1e-4, "entropy"
            for impl in IMPLEMENTATIONS:
                for inplace in (False, True) if impl != "native" else (False,):
                    local = rounded[..., columns].clone().requires_grad_()
                    before = local.detach().clone()
                    logp = token_logprobs(
                        local,
                        targets,
                        tp_group=tp_group,
                        vocab_size=vocab_size,
                        impl=impl,
                        inplace_backward=inplace,
                        chunk_rows=3,
                    )
                    assert logp.dtype == torch.float32 and logp.shape == targets.shape
                    assert torch.equal(local.detach(), before), f"{impl}: forward wrote logits"
                    value_err = (logp.double() - ref_logp).abs().max().item()
                    (logp.double() * weights).sum().backward()
                    grad = local.grad
                    assert grad.dtype == dtype, (impl, grad.dtype)
                    grad_err = (grad.double() - ref_grad[..., columns]).abs().max().item()
                    grad_tol = 1e-6 if dtype == torch.float32 else 1e-2
                    where = f"{impl} {dtype} V={vocab_size} inplace={inplace}"
                    assert value_err < 1e-5, f"{where}: logp err {value_err}"
                    assert grad_err < grad_tol, f"{where}: grad err {grad_err}"
                    if inplace:
                        assert torch.equal(local.detach(), grad), f"{where}: grad not in place"
                    else:
                        assert torch.equal(local.detach(), before), f"{where}: logits modified"
                    checks += 1
    print0(f"checks passed: {checks} (TP={tp})")
    shutdown()


if __name__ == "__main__":
    main()
