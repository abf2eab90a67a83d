#!/usr/bin/env python
"""The Triton log-prob kernels on CUDA: correctness, time, bandwidth, peak memory.

    python benchmarks/gpu/logprob_triton.py [--vocab 151936] [--tokens 8192]
    TRITON_INTERPRET=1 python benchmarks/gpu/logprob_triton.py --device cpu --vocab 1000 --tokens 64

bf16 logits [1, tokens, padded vocab]; for each of naive (`.float().log_softmax().gather`),
native (megatron's vocab-parallel CE), chunked and triton (both with in-place backward, as in
training): max |logp - fp64 reference|, forward+backward time (CUDA events, median of 5), peak
CUDA memory above the logits, and for triton the achieved bandwidth against the bytes floor of
one read of the logits in forward, one read and one write in backward.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from megatron_o1p.ops.logprobs import token_logprobs  # noqa: E402


def run(impl, base, targets, vocab, grad_weights):
    logits = base.clone().requires_grad_()
    if impl == "naive":
        logp = logits.float()[..., :vocab].log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    else:
        logp = token_logprobs(logits, targets, vocab_size=vocab, impl=impl,
                              inplace_backward=impl != "native")  # fmt: skip
    (logp * grad_weights).sum().backward()
    return logp.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from megatron_o1p.distributed.initialize import ParallelConfig, initialize

    initialize(ParallelConfig())
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    padded = -(-args.vocab // 128) * 128
    g = torch.Generator().manual_seed(0)
    base = (torch.randn(1, args.tokens, padded, generator=g) * 2).to(torch.bfloat16).to(device)
    targets = torch.randint(0, args.vocab, (1, args.tokens), generator=g).to(device)
    weights = torch.randn(1, args.tokens, generator=g).to(device)
    reference = (
        base.double()[..., : args.vocab].log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    )
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}; logits bf16 "
          f"[1, {args.tokens}, {padded}] = {base.nbytes / 2**20:.0f} MiB")  # fmt: skip
    print(f"{'impl':<9}{'max|err|':>10}{'ms':>9}{'peak MiB':>10}{'GB/s':>8}")
    for impl in ("naive", "native", "chunked", "triton"):
        err = (run(impl, base, targets, args.vocab, weights).double() - reference).abs().max()
        times = []
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start_mem = torch.cuda.memory_allocated()
            start = time.perf_counter()
            run(impl, base, targets, args.vocab, weights)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]
        peak = (torch.cuda.max_memory_allocated() - start_mem) / 2**20 if cuda else float("nan")
        floor_bytes = 3 * base.nbytes  # fwd read + bwd read + bwd write
        bandwidth = floor_bytes / seconds / 1e9
        print(f"{impl:<9}{err.item():>10.2e}{seconds * 1e3:>9.1f}{peak:>10.0f}{bandwidth:>8.0f}")


if __name__ == "__main__":
    main()
